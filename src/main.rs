//! The `kpi` command: parse arguments, run one command, map errors to exit codes.

mod cli;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KPI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("kpi=info,tower_http=info,warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // KPI_LOG_FORMAT=json: one JSON object per line, for log collectors.
    if std::env::var("KPI_LOG_FORMAT").is_ok_and(|format| format == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    // Queries run on the engine's own runtime (one worker per core). A one-shot command only
    // coordinates them, on this thread: a second pool of workers would only hand its
    // coordination back and forth between threads. The server and the cluster roles answer
    // requests on every core.
    let mut builder = if args.serves() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    };
    // Every piece of work has been awaited; what is left are idle blocking threads (one per
    // file read at a time), which a plain drop would join one by one: 2 ms of a 150 ms report.
    runtime.shutdown_background();
    std::process::exit(code);
}
