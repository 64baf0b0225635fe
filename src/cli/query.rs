//! `kpi query`: runs one read-only SQL query and prints the result.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use kpi::config::Config;
use kpi::engine::QueryLimits;
use kpi::output::{self, Format};
use kpi::{defs, Result};

/// Arguments of `kpi query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The SQL to run.
    #[arg(long)]
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Maximum rows printed.
    #[arg(long)]
    pub max_rows: Option<usize>,
}

/// Runs one read-only SQL query and prints the result.
pub async fn run(config: &Arc<Config>, args: QueryArgs) -> Result<i32> {
    let QueryArgs {
        sql,
        format,
        max_rows,
    } = args;

    let engine = super::open_engine(config).await?;
    // Views are available to ad-hoc SQL when the definitions are valid.
    match defs::load(config, &engine).await {
        Ok(registry) => engine.install_views(registry.views).await,
        Err(problems) => eprintln!(
            "warning: definitions have {} problem(s), so reporting views are unavailable; run `kpi check`",
            problems.len()
        ),
    }
    let limits = QueryLimits {
        timeout: Duration::from_millis(config.server.sql_timeout_ms),
        max_rows: max_rows.unwrap_or(usize::MAX),
    };
    let result = engine.run_sql(&sql, limits).await?;
    let text = output::render(&result, format)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    if format != Format::Json {
        writeln!(stdout)?;
    }
    if result.truncated {
        eprintln!(
            "(showing the first {} rows; raise --max-rows for more)",
            result.rows
        );
    }
    Ok(0)
}
