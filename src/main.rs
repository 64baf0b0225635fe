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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
    drop(runtime);
    std::process::exit(code);
}
