//! The cluster roles in the kpi binary: a Ballista scheduler and executors that know kpi's
//! plans (its codecs) and its data root (`kpi.toml`, with the S3 settings).

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

use super::codec::{LogicalCodec, PhysicalCodec, Wire};
use crate::config::Config;
use crate::engine::{register_data_store, Engine};
use crate::error::{Error, Result};

/// The project as an executor holds it: an engine over the data root with the project's
/// views, for the one computation that is kpi's own (attribution credits).
pub struct Role {
    engine: Engine,
    touches: String,
    conversions: String,
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role")
            .field("touches", &self.touches)
            .field("conversions", &self.conversions)
            .finish_non_exhaustive()
    }
}

impl Role {
    /// Opens the project of `config` on this process's own engine (never a cluster client,
    /// no rollup store): lists the data and installs the definitions' views.
    pub async fn open(config: &Config) -> Result<Self> {
        let mut local = config.clone();
        local.engine.cluster = None;
        local.rollups.enabled = false;
        let engine = Engine::try_new(Arc::new(local))?;
        engine.refresh().await?;
        crate::defs::load_and_install(engine.config(), &engine).await?;
        Ok(Self {
            engine,
            touches: config.attribution.touches.clone(),
            conversions: config.attribution.conversions.clone(),
        })
    }

    /// The credits `wire` asks for, over the data as listed now (computed once per data
    /// version and kept, as in `kpi serve`).
    pub async fn credits(&self, wire: &Wire) -> Result<Arc<Vec<RecordBatch>>> {
        if wire.touches != self.touches || wire.conversions != self.conversions {
            return Err(Error::input(
                "cluster_project",
                format!(
                    "the query reads attribution over {} and {}, but this executor's kpi.toml \
                     names {} and {}: start the executors with the client's project",
                    wire.touches, wire.conversions, self.touches, self.conversions
                ),
            ));
        }
        self.engine.refresh().await?;
        self.engine
            .attribution_table(wire.settings)
            .credits_in(self.engine.session())
            .await
    }
}

/// Options of `kpi cluster scheduler`.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to bind (gRPC and Ballista's REST API on one port).
    pub addr: SocketAddr,
    /// Host name executors and clients reach it by (defaults to the bound host).
    pub external_host: Option<String>,
    /// How long a job waits for an executor when there is none before it fails.
    pub no_executors_grace_seconds: u64,
    /// Silence after which an executor is taken for dead and its tasks run elsewhere.
    pub executor_timeout_seconds: u64,
}

/// Runs a scheduler until the process is stopped.
pub async fn scheduler(config: &Config, options: SchedulerOptions) -> Result<()> {
    let data = Arc::new(config.clone());
    // The scheduler plans: its sessions list the landed files, so they need the data store.
    let session_builder = Arc::new(move |session: SessionConfig| {
        let state = default_session_builder(session)?;
        register_data_store(&data, state.runtime_env())
            .map_err(|error| datafusion::error::DataFusionError::Configuration(error.message))?;
        Ok(state)
    });
    let scheduler_config = SchedulerConfig {
        bind_host: options.addr.ip().to_string(),
        bind_port: options.addr.port(),
        external_host: options
            .external_host
            .unwrap_or_else(|| options.addr.ip().to_string()),
        no_executors_grace_period_seconds: options.no_executors_grace_seconds,
        // kpi's executors heartbeat every 5 s: one lost is seen within the timeout (Ballista's
        // default is 180 s), checked every 5 s.
        executor_timeout_seconds: options.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: 5,
        override_logical_codec: Some(Arc::new(LogicalCodec::for_role(None))),
        override_physical_codec: Some(Arc::new(PhysicalCodec::for_role(None))),
        override_session_builder: Some(session_builder),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&scheduler_config)
        .await
        .map_err(ballista)?;
    tracing::info!(
        "kpi cluster scheduler on {} (data root {})",
        options.addr,
        config.data_root.url()
    );
    start_server(cluster, options.addr, Arc::new(scheduler_config))
        .await
        .map_err(ballista)
}

/// Options of `kpi cluster executor`.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler (`host:port`).
    pub scheduler: String,
    /// Address to bind for Flight (shuffle data); gRPC takes the next port.
    pub addr: SocketAddr,
    /// Host name the others reach it by (defaults to the bound host).
    pub external_host: Option<String>,
    /// Task slots: partitions run at once (Ballista's vcores); 0 means the number of cores.
    pub slots: usize,
    /// Folder for shuffle files (a temporary folder when `None`).
    pub work_dir: Option<String>,
}

/// Runs an executor until the process is stopped.
pub async fn executor(config: &Config, options: ExecutorOptions) -> Result<()> {
    let (scheduler_host, scheduler_port) = split_host_port(&options.scheduler)?;
    let role = Arc::new(Role::open(config).await?);
    let data = Arc::new(config.clone());
    let work_dir = match options.work_dir.clone() {
        Some(dir) => dir,
        None => std::env::temp_dir()
            .join(format!("kpi-executor-{}", options.addr.port()))
            .to_string_lossy()
            .into_owned(),
    };
    std::fs::create_dir_all(&work_dir)?;
    let temp = work_dir.clone();
    let runtime_producer = Arc::new(move |_: &SessionConfig| {
        let runtime = RuntimeEnvBuilder::new()
            .with_temp_file_path(temp.clone())
            .build()?;
        register_data_store(&data, &runtime)
            .map_err(|error| datafusion::error::DataFusionError::Configuration(error.message))?;
        Ok(Arc::new(runtime))
    });
    let executor_config = ExecutorProcessConfig {
        bind_host: options.addr.ip().to_string(),
        external_host: Some(
            options
                .external_host
                .unwrap_or_else(|| options.addr.ip().to_string()),
        ),
        port: options.addr.port(),
        grpc_port: options.addr.port().saturating_add(1),
        scheduler_host,
        scheduler_port,
        vcores: options.slots,
        work_dir: Some(work_dir),
        // Heartbeats often enough that the scheduler sees a lost executor within seconds.
        executor_heartbeat_interval_seconds: 5,
        print_thread_info: false,
        override_logical_codec: Some(Arc::new(LogicalCodec::for_role(Some(Arc::clone(&role))))),
        override_physical_codec: Some(Arc::new(PhysicalCodec::for_role(Some(role)))),
        override_runtime_producer: Some(runtime_producer),
        ..Default::default()
    };
    tracing::info!(
        "kpi cluster executor on {} for scheduler {} (data root {})",
        options.addr,
        options.scheduler,
        config.data_root.url()
    );
    start_executor_process(Arc::new(executor_config))
        .await
        .map_err(ballista)
}

fn ballista(error: ballista_core::error::BallistaError) -> Error {
    Error::unavailable("cluster", format!("Ballista: {error}"))
}

fn split_host_port(text: &str) -> Result<(String, u16)> {
    let bad = || {
        Error::input(
            "cluster",
            format!("`{text}` is not host:port (for example 127.0.0.1:50050)"),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}
