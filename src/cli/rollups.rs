//! `kpi rollups status|build|prune`: what the rollup store holds, building it ahead of time,
//! and removing what nothing references any more.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use kpi::config::Config;
use kpi::defs::MetricKind;
use kpi::rollup::{file_id, signature, Delta, Rollups};
use kpi::{Error, Result};

use super::Project;

/// Arguments of `kpi rollups`.
#[derive(Debug, clap::Args)]
pub struct RollupsArgs {
    #[command(subcommand)]
    command: RollupsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RollupsCommand {
    /// What is stored, how big, and how much of it the current data still uses.
    Status,
    /// Compute every partition the dashboards' reports need, ahead of time.
    Build {
        /// Only this dashboard (default: all).
        #[arg(long)]
        dashboard: Option<String>,
        /// Last week to build, such as 2026-W45 (default: each dashboard's latest complete week).
        #[arg(long)]
        week: Option<String>,
        /// How many weeks up to it.
        #[arg(long, default_value_t = 1)]
        weeks: usize,
    },
    /// Remove partitions no current definition or data version references, and unreferenced
    /// files older than an hour.
    Prune {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs one `kpi rollups` command.
pub async fn run(config: &Arc<Config>, args: RollupsArgs) -> Result<i32> {
    let project = Project::open(config).await?;
    let Some(rollups) = project.engine.rollups().cloned() else {
        return Err(Error::input(
            "rollups_disabled",
            "the rollup store is off (rollups.enabled = false or KPI_ROLLUPS_ENABLED=false); turn it on to use kpi rollups",
        ));
    };
    match args.command {
        RollupsCommand::Status => status(&project, &rollups).await,
        RollupsCommand::Build {
            dashboard,
            week,
            weeks,
        } => build(&project, &rollups, dashboard, week, weeks).await,
        RollupsCommand::Prune { dry_run } => prune(&project, &rollups, dry_run).await,
    }
}

/// Which stored partitions the current definitions and data still reference.
struct Usage {
    current: Delta,
    stale_inputs: usize,
    old_definitions: usize,
}

async fn usage(project: &Project, rollups: &Rollups) -> Result<Usage> {
    let stored = rollups.contents().await?;
    let engine = &project.engine;
    let tables: BTreeSet<String> = stored
        .inputs
        .values()
        .flatten()
        .map(|input| input.table.clone())
        .collect();
    let files = engine.files_of(tables.iter()).await;
    let present: HashSet<(&str, u64, i64)> = files
        .values()
        .flatten()
        .map(|meta| {
            (
                meta.location.as_ref(),
                meta.size,
                meta.last_modified.timestamp_micros(),
            )
        })
        .collect();
    let inputs_present: BTreeMap<&String, bool> = stored
        .inputs
        .iter()
        .map(|(fingerprint, inputs)| {
            let all = inputs
                .iter()
                .all(|input| present.contains(&(input.path.as_str(), input.size, input.modified)));
            (fingerprint, all)
        })
        .collect();
    let views = engine.view_sql().await;
    let signatures: BTreeSet<String> = project
        .registry
        .metrics
        .values()
        .filter_map(|metric| match &metric.kind {
            MetricKind::Simple {
                measure,
                table,
                time_column,
                filter,
            } => Some(signature(table, measure, filter.as_deref(), time_column)),
            MetricKind::Conversion { view, .. } => {
                Some(signature(view, "AVG(__converted)", None, "__at"))
            }
            _ => None,
        })
        .collect();
    let defined: BTreeSet<&String> = stored
        .pieces
        .iter()
        .filter(|(_, info)| {
            let views_current = info
                .views
                .iter()
                .all(|(name, sql)| views.get(name) == Some(sql));
            let metric_current = info.kind != "aggregate" || signatures.contains(&info.signature);
            views_current && metric_current
        })
        .map(|(piece, _)| piece)
        .collect();
    let mut current = Delta::default();
    let (mut stale_inputs, mut old_definitions) = (0, 0);
    for entry in &stored.entries {
        if !defined.contains(&entry.piece) {
            old_definitions += 1;
        } else if inputs_present.get(&entry.fingerprint) != Some(&true) {
            stale_inputs += 1;
        } else {
            current.entries.push(entry.clone());
        }
    }
    for entry in &current.entries {
        if let Some(info) = stored.pieces.get(&entry.piece) {
            current.pieces.insert(entry.piece.clone(), info.clone());
        }
        if let Some(inputs) = stored.inputs.get(&entry.fingerprint) {
            current
                .inputs
                .insert(entry.fingerprint.clone(), inputs.clone());
        }
    }
    // Recorded reach stays for the files still landed (a file's reach never goes stale).
    let listed: HashSet<String> = files.values().flatten().map(file_id).collect();
    for (key, reach) in &stored.reach {
        let kept: BTreeMap<String, _> = reach
            .iter()
            .filter(|(file, _)| listed.contains(*file))
            .map(|(file, reach)| (file.clone(), *reach))
            .collect();
        if !kept.is_empty() {
            current.reach.insert(key.clone(), kept);
        }
    }
    Ok(Usage {
        current,
        stale_inputs,
        old_definitions,
    })
}

async fn status(project: &Project, rollups: &Rollups) -> Result<i32> {
    let usage = usage(project, rollups).await?;
    let objects = rollups.objects().await?;
    let bytes: u64 = objects.iter().map(|o| o.size).sum();
    let referenced: BTreeSet<&String> = usage.current.entries.iter().map(|e| &e.file).collect();
    println!("rollup store   {}", rollups.location());
    println!(
        "stored         {} objects, {}",
        objects.len(),
        human_bytes(bytes)
    );
    println!(
        "partitions     {} current, {} over changed or removed files, {} of old definitions",
        usage.current.entries.len(),
        usage.stale_inputs,
        usage.old_definitions
    );
    println!(
        "pieces         {} current (in {} data files)",
        usage.current.pieces.len(),
        referenced.len()
    );
    let label = |info: &kpi::rollup::PieceInfo| match info.kind.as_str() {
        "query" => "(health queries)".to_string(),
        _ => info.relation.clone(),
    };
    let mut by_relation: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for info in usage.current.pieces.values() {
        by_relation.entry(label(info)).or_default().0 += 1;
    }
    for entry in &usage.current.entries {
        if let Some(info) = usage.current.pieces.get(&entry.piece) {
            by_relation.entry(label(info)).or_default().1 += 1;
        }
    }
    println!();
    println!("{:<36} {:>7} {:>11}", "relation", "pieces", "partitions");
    for (relation, (pieces, partitions)) in by_relation {
        println!("{relation:<36} {pieces:>7} {partitions:>11}");
    }
    if usage.stale_inputs + usage.old_definitions > 0 {
        println!("\n`kpi rollups prune` removes what is no longer referenced.");
    }
    Ok(0)
}

async fn build(
    project: &Project,
    rollups: &Rollups,
    dashboard: Option<String>,
    week: Option<String>,
    weeks: usize,
) -> Result<i32> {
    let context = project.report_context();
    let names: Vec<String> = match dashboard {
        Some(name) => vec![context.dashboard(&name)?.name.clone()],
        None => project.registry.dashboards.keys().cloned().collect(),
    };
    let mut work = Vec::new();
    for name in &names {
        let (definition, last) = context.dashboard_week(name, week.as_deref())?;
        let mut period = last;
        let mut periods = Vec::new();
        for _ in 0..weeks.max(1) {
            periods.push(period);
            period = context.calendar.previous(period);
        }
        periods.reverse();
        work.extend(periods.into_iter().map(|p| (definition, p)));
    }
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let total = work.len();
    for (done, (definition, period)) in work.into_iter().enumerate() {
        let before = rollups.activity();
        let one = Instant::now();
        let label = context.calendar.label(period);
        if terminal {
            eprint!(
                "\r[{}/{total}] {} {label} …\x1b[K",
                done + 1,
                definition.name
            );
        }
        context.build(definition, period).await?;
        let after = rollups.activity();
        let line = format!(
            "[{}/{total}] {} {label}: {} partitions computed, {} reused in {:.1} s",
            done + 1,
            definition.name,
            after.computed - before.computed,
            after.reused - before.reused,
            one.elapsed().as_secs_f64()
        );
        if terminal {
            eprint!("\r{line}\x1b[K\n");
        } else {
            eprintln!("{line}");
        }
    }
    let activity = rollups.activity();
    eprintln!(
        "kpi rollups build: {total} report(s) in {:.1} s; {} partitions computed ({} queries), {} reused",
        started.elapsed().as_secs_f64(),
        activity.computed,
        activity.queries,
        activity.reused
    );
    Ok(0)
}

async fn prune(project: &Project, rollups: &Rollups, dry_run: bool) -> Result<i32> {
    let usage = usage(project, rollups).await?;
    let removed = usage.stale_inputs + usage.old_definitions;
    if dry_run {
        println!(
            "would remove {removed} partitions ({} over changed or removed files, {} of old definitions) and every unreferenced file older than an hour",
            usage.stale_inputs, usage.old_definitions
        );
        return Ok(0);
    }
    let kept = usage.current.entries.len();
    let (objects, bytes) = rollups
        .rewrite(usage.current, chrono::Duration::hours(1))
        .await?;
    println!(
        "removed {removed} partitions and {objects} objects ({}); kept {kept} partitions",
        human_bytes(bytes)
    );
    Ok(0)
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
