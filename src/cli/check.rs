//! `kpi check`: validates the data layout, every table and every definition, then lists the
//! landed rows that break the tracking conventions (`[conventions]`). Convention findings are
//! data problems for marketing operations, not broken definitions: they are printed as
//! warnings and do not change the exit code.

use std::io::Write;
use std::sync::Arc;

use kpi::config::Config;
use kpi::{defs, Result};

/// Prints every layout, table and definition problem; exit code 1 when there is any.
pub async fn run(config: &Arc<Config>) -> Result<i32> {
    let engine = super::open_engine(config).await?;
    let mut problems = 0usize;
    let mut stdout = std::io::stdout().lock();
    for problem in engine.layout_problems().await {
        writeln!(stdout, "{problem}")?;
        problems += 1;
    }
    let tables = engine.tables().await;
    for table in &tables {
        if let Some(error) = &table.error {
            writeln!(stdout, "{error}")?;
            problems += 1;
        }
    }
    match defs::load(config, &engine).await {
        Ok(registry) => {
            if problems == 0 {
                writeln!(
                    stdout,
                    "ok: {} tables, {} views, {} metrics, {} dashboards (definitions {})",
                    tables.len(),
                    registry.views.len(),
                    registry.metrics.len(),
                    registry.dashboards.len(),
                    registry.version
                )?;
            }
        }
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                writeln!(stdout, "{diagnostic}")?;
            }
            problems += diagnostics.len();
        }
    }
    let rules = &config.conventions.rules;
    if !rules.is_empty() {
        let counts =
            kpi::report::conventions::count_conventions(&engine, &config.calendar(), rules, None)
                .await;
        for count in &counts {
            match kpi::report::conventions::finding(count) {
                Some(text) => writeln!(stdout, "warning: {text}")?,
                None => writeln!(stdout, "convention ok: {} ({})", count.rule, count.table)?,
            }
        }
    }
    if problems > 0 {
        writeln!(stdout, "{problems} problem(s) found")?;
        return Ok(1);
    }
    Ok(0)
}
