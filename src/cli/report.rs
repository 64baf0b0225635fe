//! `kpi report`: writes one weekly report as a self-contained HTML, JSON or CSV file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kpi::config::Config;
use kpi::output;
use kpi::{Error, Result};

use super::Project;

/// Arguments of `kpi report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Dashboard name (a file stem in dashboards/).
    pub dashboard: String,
    /// Week such as 2026-W47 (default: the latest complete week).
    #[arg(long)]
    pub week: Option<String>,
    /// Output file; its extension picks the format: .html, .json or .csv.
    #[arg(long)]
    pub out: PathBuf,
}

/// The file format `--out`'s extension picks.
enum Format {
    Html,
    Json,
    Csv,
}

/// Writes one weekly report as a self-contained HTML, JSON or CSV file.
pub async fn run(config: &Arc<Config>, args: ReportArgs) -> Result<i32> {
    let ReportArgs {
        dashboard,
        week,
        out,
    } = args;
    // Known before any work: a wrong name must not cost a report's computation.
    let format = match out.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some("html") | Some("htm") => Format::Html,
        _ => {
            return Err(Error::input(
                "bad_output",
                format!("{}: use a .html, .json or .csv file name", out.display()),
            ))
        }
    };

    let project = Project::open(config).await?;
    let context = project.report_context();
    let (definition, period) = context.dashboard_week(&dashboard, week.as_deref())?;
    let started = Instant::now();
    let report = super::with_progress(
        &project.engine,
        &format!("{dashboard} {}", context.calendar.label(period)),
        // Project::open has just listed the data root.
        context.build_as_listed(definition, period),
    )
    .await?;
    let body = match format {
        Format::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| Error::internal(e.to_string()))?
        }
        Format::Csv => kpi::report::to_csv(&report),
        Format::Html => kpi::render::pages::report_page(&report)?,
    };
    output::write_atomically(&out, body.as_bytes())?;
    let store = match project.engine.rollups() {
        Some(rollups) => {
            let activity = rollups.activity();
            format!(
                "; rollups: {} partitions reused, {} computed in {} queries",
                activity.reused, activity.computed, activity.queries
            )
        }
        None => "; rollups off: every number computed from the views".to_string(),
    };
    eprintln!(
        "kpi report: {} {} ({} to {}) → {} in {:.1} s{store}",
        dashboard,
        report.week,
        report.start,
        report.end,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    project.finish();
    Ok(0)
}
