//! `kpi snapshot`: freezes one weekly report in the snapshot store.

use std::sync::Arc;

use kpi::config::Config;
use kpi::Result;

use super::Project;

/// Arguments of `kpi snapshot`.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// Dashboard name.
    pub dashboard: String,
    /// Week such as 2026-W47 (default: the latest complete week).
    #[arg(long)]
    pub week: Option<String>,
}

/// Freezes one weekly report in the snapshot store.
pub async fn run(config: &Arc<Config>, args: SnapshotArgs) -> Result<i32> {
    let SnapshotArgs { dashboard, week } = args;

    let project = Project::open(config).await?;
    let context = project.report_context();
    let (definition, period) = context.dashboard_week(&dashboard, week.as_deref())?;
    let store = kpi::snapshot::Store::open(config)?;
    let taken = store.take(&context, definition, period).await?;
    let s = &taken.snapshot;
    println!(
        "{} snapshot {} of {} {} (taken {}){}",
        if taken.created {
            "new"
        } else {
            "unchanged: existing"
        },
        s.id,
        s.dashboard,
        s.week,
        s.taken_at.to_rfc3339(),
        s.previous
            .as_ref()
            .map(|p| format!("; replaces {p}"))
            .unwrap_or_default()
    );
    Ok(0)
}
