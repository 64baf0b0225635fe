//! Distributed execution on Apache Ballista (the `cluster` build feature).
//!
//! kpi does not distribute anything itself. With `engine.cluster = "df://host:port"`
//! (`KPI_CLUSTER`) the engine's sessions are Ballista client sessions: kpi plans a query
//! (logical plan) as always, Ballista's scheduler turns it into stages and its executors run
//! them. Rollup builds, `kpi query` and `POST /api/v1/sql` then run on the cluster; report
//! pages, the metric API and email read the rollup store in the serving process, so an
//! interactive page never waits on a job submission (each query is a job; about half a second
//! each on real clusters per apache/datafusion-ballista#714) or on a scheduler, which has no
//! failover.
//!
//! The two roles are subcommands of the same binary (`kpi cluster scheduler`, `kpi cluster
//! executor`), so they know kpi's plans: [`codec`] carries the one table kpi adds to
//! DataFusion's (the attribution credits) between the client, the scheduler and the executors.
//! Both roles read `kpi.toml` for the data root and its S3 settings, and open the project's
//! definitions: an executor computes attribution credits with the same engine `kpi serve`
//! uses, over the views the project defines.
//!
//! What the plans carry and what must be where:
//! - landed tables travel inside the plan as Parquet listing scans with their Hive partition
//!   columns; a local data root must be the same path on every executor (a shared volume),
//!   an S3 root needs nothing more than `kpi.toml`'s `[data.s3]` on each role;
//! - the scheduler lists a table's files when it plans (the client's listing cache does not
//!   travel), so a file landing between kpi's listing and the job may be read by it; the
//!   rollup store's invalidation by file then recomputes every partition that file's rows can
//!   reach at the next listing, as it does for any landing.

pub mod codec;
pub mod roles;

use std::sync::Arc;
use std::time::Duration;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};

use crate::error::{Error, Result};

/// Port of a `df://host` URL without one (Ballista's default).
pub const DEFAULT_PORT: u16 = 50050;

/// The scheduler's gRPC address (`http://host:port`) of a `df://host:port` URL.
pub fn scheduler_endpoint(url: &str) -> Result<String> {
    let parsed = url::Url::parse(url)
        .map_err(|error| Error::input("cluster", format!("bad cluster URL `{url}`: {error}")))?;
    let host = parsed.host_str().ok_or_else(|| {
        Error::input(
            "cluster",
            format!("cluster URL `{url}` has no host; use df://host:port"),
        )
    })?;
    Ok(format!(
        "http://{host}:{}",
        parsed.port().unwrap_or(DEFAULT_PORT)
    ))
}

/// `state` as a Ballista client session of the scheduler at `url`: plans here, runs there,
/// with kpi's codecs.
pub fn remote(url: &str, state: SessionState) -> Result<SessionState> {
    let endpoint = scheduler_endpoint(url)?;
    let config = state
        .config()
        .clone()
        .with_ballista_logical_extension_codec(Arc::new(codec::LogicalCodec::client()))
        .with_ballista_physical_extension_codec(Arc::new(codec::PhysicalCodec::client()));
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    Ok(state.upgrade_for_ballista(endpoint)?)
}

/// An error from the cluster, naming it (a query on a cluster that is down or has no
/// executors says which cluster).
pub fn named(url: &str, mut error: Error) -> Error {
    if !error.message.contains(url) {
        error.message = format!("on the cluster {url}: {}", error.message);
    }
    error
}

/// How long a query waits for the cluster to have an executor before it fails.
pub const GRACE: Duration = Duration::from_secs(30);

/// Fails, naming the cluster, when it cannot run a query: its scheduler does not answer, or
/// no executor registers within `grace` (Ballista itself keeps such a job waiting with no
/// end). A cluster seen ready in the last second is not asked again.
pub async fn ready(url: &str, grace: Duration) -> Result<()> {
    static READY: std::sync::Mutex<Option<(String, std::time::Instant)>> =
        std::sync::Mutex::new(None);
    let recently = |at: &Option<(String, std::time::Instant)>| {
        at.as_ref()
            .is_some_and(|(seen, when)| seen == url && when.elapsed() < Duration::from_secs(1))
    };
    if recently(&READY.lock().unwrap_or_else(|p| p.into_inner())) {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + grace;
    loop {
        if !executors(url).await?.is_empty() {
            *READY.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((url.to_string(), std::time::Instant::now()));
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::unavailable(
                "cluster_no_executors",
                format!(
                    "the cluster {url} has no executors (waited {} s for one): start one in the \
                     project folder with `kpi cluster executor --scheduler HOST:PORT`",
                    grace.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What `/healthz` shows of the cluster: its scheduler and executors, from the scheduler's
/// own REST API (`/api/executors`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The configured URL.
    pub url: String,
    /// Whether the scheduler answered.
    pub reachable: bool,
    /// Executors registered with it.
    pub executors: Vec<Executor>,
    /// Task slots over all executors.
    pub slots: u64,
    /// Why the scheduler did not answer, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One executor as the scheduler knows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Executor {
    /// Its id.
    pub id: String,
    /// Host it serves shuffle data from.
    pub host: String,
    /// Its Flight port.
    pub port: u16,
    /// Task slots: the partitions it runs at once (Ballista's vcores).
    pub slots: u64,
    /// When its last heartbeat arrived (Unix milliseconds), if known.
    pub last_seen_unix_ms: Option<u64>,
}

/// Asks the scheduler at `url` for its executors (a short timeout: `/healthz` stays cheap).
pub async fn status(url: &str) -> Status {
    match executors(url).await {
        Ok(executors) => Status {
            url: url.to_string(),
            reachable: true,
            slots: executors.iter().map(|e| e.slots).sum(),
            executors,
            error: None,
        },
        Err(error) => Status {
            url: url.to_string(),
            reachable: false,
            executors: Vec::new(),
            slots: 0,
            error: Some(error.message),
        },
    }
}

async fn executors(url: &str) -> Result<Vec<Executor>> {
    let endpoint = scheduler_endpoint(url)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|error| Error::internal(error.to_string()))?;
    let unreachable = |error: reqwest::Error| {
        Error::unavailable(
            "cluster_unreachable",
            format!(
                "the cluster {url} does not answer ({error}): start its scheduler with \
                 `kpi cluster scheduler`, or fix engine.cluster (KPI_CLUSTER)"
            ),
        )
    };
    let body = client
        .get(format!("{endpoint}/api/executors"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(unreachable)?
        .bytes()
        .await
        .map_err(unreachable)?;
    let answer: Vec<serde_json::Value> = serde_json::from_slice(&body).map_err(|error| {
        Error::unavailable(
            "cluster_unreachable",
            format!("scheduler {url} answered /api/executors with something else: {error}"),
        )
    })?;
    Ok(answer
        .iter()
        .map(|executor| {
            let text = |key: &str| executor[key].as_str().unwrap_or_default().to_string();
            let slots = executor["specification"]["vcores"]
                .as_u64()
                .unwrap_or_default();
            Executor {
                id: text("id"),
                host: text("host"),
                port: executor["port"].as_u64().unwrap_or_default() as u16,
                slots,
                last_seen_unix_ms: executor["last_seen"].as_u64(),
            }
        })
        .collect())
}
