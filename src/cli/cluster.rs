//! `kpi cluster scheduler|executor`: the Apache Ballista roles, in this binary so they know
//! kpi's plans (needs the `cluster` build feature).

use std::net::SocketAddr;
use std::sync::Arc;

use kpi::config::Config;
use kpi::Result;

/// Arguments of `kpi cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    role: RoleCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RoleCommand {
    /// Run a Ballista scheduler (clients connect with engine.cluster = "df://HOST:PORT").
    Scheduler {
        /// Address to listen on: gRPC for clients and executors, and Ballista's REST API
        /// (`/api/executors`).
        #[arg(long, default_value = "127.0.0.1:50050")]
        addr: SocketAddr,
        /// Host name the others reach this scheduler by (default: the address's host).
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds a job waits for an executor when the cluster has none, then fails.
        #[arg(long, default_value_t = 30)]
        no_executors_grace_seconds: u64,
        /// Seconds without a heartbeat after which an executor is taken for dead and its
        /// tasks are run on the others (executors heartbeat every 5 s).
        #[arg(long, default_value_t = 30)]
        executor_timeout_seconds: u64,
    },
    /// Run a Ballista executor (started in the project folder: it reads kpi.toml and the
    /// definitions).
    Executor {
        /// The scheduler, host:port.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Address for Arrow Flight (shuffle data); its gRPC service takes the next port.
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: SocketAddr,
        /// Host name the others reach this executor by (default: the address's host).
        #[arg(long)]
        external_host: Option<String>,
        /// Task slots: partitions run at once (0: the number of cores).
        #[arg(long, default_value_t = 0)]
        slots: usize,
        /// Folder for shuffle files (default: a folder under the system's temporary folder).
        #[arg(long)]
        work_dir: Option<String>,
    },
}

/// Runs one role until the process is stopped.
#[cfg(feature = "cluster")]
pub async fn run(config: &Arc<Config>, args: ClusterArgs) -> Result<i32> {
    use kpi::cluster::roles;
    match args.role {
        RoleCommand::Scheduler {
            addr,
            external_host,
            no_executors_grace_seconds,
            executor_timeout_seconds,
        } => {
            eprintln!("kpi cluster scheduler on df://{addr}");
            roles::scheduler(
                config,
                roles::SchedulerOptions {
                    addr,
                    external_host,
                    no_executors_grace_seconds,
                    executor_timeout_seconds,
                },
            )
            .await?
        }
        RoleCommand::Executor {
            scheduler,
            addr,
            external_host,
            slots,
            work_dir,
        } => {
            eprintln!("kpi cluster executor on {addr}, scheduler {scheduler}");
            roles::executor(
                config,
                roles::ExecutorOptions {
                    scheduler,
                    addr,
                    external_host,
                    slots,
                    work_dir,
                },
            )
            .await?
        }
    }
    Ok(0)
}

/// Without the `cluster` feature: says how to get it.
#[cfg(not(feature = "cluster"))]
pub async fn run(_config: &Arc<Config>, args: ClusterArgs) -> Result<i32> {
    let _ = args.role;
    Err(kpi::Error::input(
        "cluster_unsupported",
        "this kpi was built without the `cluster` feature: build it with \
         `cargo build --release --features cluster` to run the Ballista roles",
    ))
}
