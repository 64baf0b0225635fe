//! Command-line arguments and the dispatch of each command to the library: one file per
//! command, each with its arguments and a short `run`. No logic beyond calling the library and
//! printing what it returns; [`Project`] is the one way commands open the engine and the
//! definitions.

mod alerts;
mod attribution;
mod check;
mod cluster;
mod demo;
mod email;
mod metric;
mod query;
mod report;
mod rollups;
mod serve;
mod share;
mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use kpi::config::{Config, Overrides};
use kpi::engine::Engine;
use kpi::{defs, Result};

/// KPI reporting and metric layer over landed Parquet.
#[derive(Debug, Parser)]
#[command(name = "kpi", version, about)]
pub struct Cli {
    /// Project folder holding kpi.toml, metrics/, queries/ and dashboards/.
    #[arg(long, global = true, default_value = ".")]
    project: PathBuf,
    /// Data root: a folder, file:///path or s3://bucket/prefix (overrides kpi.toml).
    #[arg(long, global = true, env = "KPI_DATA")]
    data: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the demo data set as Parquet.
    Demo(demo::DemoArgs),
    /// Validate configuration and every definition against the data.
    Check,
    /// Run one read-only SQL query.
    Query(query::QueryArgs),
    /// Compute one metric over a range of periods.
    Metric(metric::MetricArgs),
    /// Write one weekly report as a self-contained file: HTML (inline CSS and SVG), JSON or CSV.
    Report(report::ReportArgs),
    /// Freeze a weekly report (values, charts, definitions, data versions) in the snapshot store.
    Snapshot(snapshot::SnapshotArgs),
    /// Email a weekly report: snapshot, MIME message, SMTP, at most once per recipient list.
    Email(email::EmailArgs),
    /// Credit conversions to touches under an attribution model, from CSV or Parquet files.
    Attribution(attribution::AttributionArgs),
    /// Judge a dashboard's alerts for a week and deliver each firing alert once; `snooze`.
    Alerts(alerts::AlertsArgs),
    /// Print a signed link to a report or snapshot that opens without a token until it expires.
    Share(share::ShareArgs),
    /// The rollup store: status, build ahead of time, prune.
    Rollups(rollups::RollupsArgs),
    /// Start the HTTP server.
    Serve(serve::ServeArgs),
    /// Run an Apache Ballista scheduler or executor for `engine.cluster`.
    Cluster(cluster::ClusterArgs),
}

impl Cli {
    /// Whether the command serves requests until stopped (the server, a cluster role), rather
    /// than doing one thing and exiting.
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Cluster(_))
    }
}

/// Runs the parsed command; returns the exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let overrides = Overrides {
        data: cli.data.clone(),
        addr: match &cli.command {
            Command::Serve(args) => args.addr.clone(),
            _ => None,
        },
    };
    let config = Arc::new(Config::load(&cli.project, &overrides)?);
    tracing::debug!("configuration loaded");
    match cli.command {
        Command::Demo(args) => demo::run(&config, args),
        Command::Check => check::run(&config).await,
        Command::Query(args) => query::run(&config, args).await,
        Command::Metric(args) => metric::run(&config, args).await,
        Command::Report(args) => report::run(&config, args).await,
        Command::Snapshot(args) => snapshot::run(&config, args).await,
        Command::Email(args) => email::run(&config, args).await,
        Command::Attribution(args) => attribution::run(args).await,
        Command::Alerts(args) => alerts::run(&config, args).await,
        Command::Share(args) => share::run(&config, args).await,
        Command::Rollups(args) => rollups::run(&config, args).await,
        Command::Serve(args) => serve::run(&config, args).await,
        Command::Cluster(args) => cluster::run(&config, args).await,
    }
}

/// The engine over the landed data with the project's definitions loaded and installed.
struct Project {
    config: Arc<Config>,
    engine: Engine,
    registry: defs::Registry,
}

impl Project {
    /// Opens the engine, lists the data and loads the definitions (all must be valid).
    async fn open(config: &Arc<Config>) -> Result<Self> {
        let engine = Engine::try_new(Arc::clone(config))?;
        let open = async {
            engine.refresh().await?;
            defs::load_and_install(config, &engine).await
        };
        let registry = match engine.rollups() {
            Some(rollups) => tokio::join!(open, rollups.preload()).0?,
            None => open.await?,
        };
        tracing::debug!("project open");
        Ok(Self {
            config: Arc::clone(config),
            engine,
            registry,
        })
    }

    /// Ends a one-shot command whose work is done and written: the process exits next, so the
    /// engine (its sessions, kept views, query runtime and their memory) is left to the exit
    /// instead of being taken apart piece by piece first (a landed day's report: 174 to 158 ms
    /// from the clock around the process, paired runs). Unless a query spilled: then it is dropped as usual, which removes DataFusion's
    /// temporary folder.
    fn finish(self) {
        if self.engine.spill_folders().is_empty() {
            std::mem::forget(self);
        }
    }

    /// The report context at the current time.
    fn report_context(&self) -> kpi::report::Context<'_> {
        kpi::report::Context::new(
            &self.registry,
            &self.engine,
            &self.config,
            chrono::Utc::now(),
        )
    }
}

/// Opens the engine and lists the data root once.
async fn open_engine(config: &Arc<Config>) -> Result<Engine> {
    let engine = Engine::try_new(Arc::clone(config))?;
    engine.refresh().await?;
    Ok(engine)
}

/// Runs `work` and, on a terminal, shows what the rollup store has done so far (a line
/// rewritten four times a second), so a long first build is visibly moving.
async fn with_progress<T>(
    engine: &Engine,
    label: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    use std::io::IsTerminal;
    let Some(rollups) = engine.rollups().cloned() else {
        return work.await;
    };
    if !std::io::stderr().is_terminal() {
        return work.await;
    }
    let started = std::time::Instant::now();
    let tick = std::time::Duration::from_millis(250);
    tokio::pin!(work);
    loop {
        match tokio::time::timeout(tick, &mut work).await {
            Ok(result) => {
                if started.elapsed() >= tick {
                    eprint!("\r\x1b[K");
                }
                return result;
            }
            Err(_) => {
                let activity = rollups.activity();
                eprint!(
                    "\r{label}: {} partitions from the store, {} computed in {} queries, {:.1} s\x1b[K",
                    activity.reused,
                    activity.computed,
                    activity.queries,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
}
