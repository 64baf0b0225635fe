//! `kpi alerts`: judges a dashboard's alerts for a week, records their states and delivers each
//! firing alert once; `kpi alerts snooze NAME --until DATE` pauses one alert's deliveries.

use std::io::Write;
use std::sync::Arc;

use kpi::config::Config;
use kpi::{Error, Result};

use super::Project;

/// Arguments of `kpi alerts`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlertsArgs {
    /// Dashboard name.
    pub dashboard: Option<String>,
    /// Week such as 2026-W47 (default: the latest complete week).
    #[arg(long)]
    pub week: Option<String>,
    /// Judge and print; record and deliver nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format: table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Snooze an alert.
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
}

/// `kpi alerts snooze`.
#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// Judge and record an alert but deliver nothing until DATE (included).
    Snooze {
        /// Alert name.
        name: String,
        /// Last day of the snooze (YYYY-MM-DD, reporting time zone).
        #[arg(long)]
        until: String,
    },
}

/// Runs `kpi alerts`.
pub async fn run(config: &Arc<Config>, args: AlertsArgs) -> Result<i32> {
    let project = Project::open(config).await?;
    let mut stdout = std::io::stdout().lock();
    if let Some(AlertsCommand::Snooze { name, until }) = &args.command {
        let until = chrono::NaiveDate::parse_from_str(until, "%Y-%m-%d").map_err(|_| {
            Error::input(
                "bad_date",
                format!("`{until}` is not a date; write 2026-12-31"),
            )
        })?;
        let known = project
            .registry
            .dashboards
            .values()
            .flat_map(|d| &d.alerts)
            .any(|a| &a.name == name);
        if !known {
            return Err(Error::not_found(
                "unknown_alert",
                format!("no alert named `{name}`; alerts are declared as [[alert]] in dashboards/"),
            ));
        }
        kpi::alerts::AlertLog::open(config)?
            .snooze(name, until)
            .await?;
        writeln!(
            stdout,
            "{name}: snoozed until {until} (judged and recorded, not delivered)"
        )?;
        return Ok(0);
    }
    let Some(dashboard) = &args.dashboard else {
        return Err(Error::input(
            "no_dashboard",
            "name a dashboard: kpi alerts weekly-marketing [--week 2026-W47]",
        ));
    };
    if !matches!(args.format.as_str(), "table" | "json") {
        return Err(Error::input("bad_format", "--format is table or json"));
    }
    let context = project.report_context();
    let (definition, week) = context.dashboard_week(dashboard, args.week.as_deref())?;
    let outcomes = kpi::alerts::run(&context, definition, week, args.dry_run).await?;
    if args.format == "json" {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&outcomes).unwrap_or_default()
        )?;
    } else if outcomes.is_empty() {
        writeln!(stdout, "{dashboard} declares no alert")?;
    } else {
        for outcome in &outcomes {
            let record = &outcome.record;
            let state = serde_json::to_value(record.state).unwrap_or_default();
            writeln!(
                stdout,
                "{:<24} {:<9} {} {}: value {} ({}){}{}",
                record.alert,
                state.as_str().unwrap_or_default(),
                record.week,
                record.metric,
                record
                    .verdict
                    .value
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "—".into()),
                record.condition,
                record
                    .verdict
                    .note
                    .as_ref()
                    .map(|n| format!("; {n}"))
                    .unwrap_or_default(),
                if outcome.delivery.is_empty() {
                    String::new()
                } else {
                    format!(" → {}", outcome.delivery)
                },
            )?;
        }
    }
    let failed = outcomes.iter().any(|o| o.delivery.starts_with("failed"));
    Ok(if failed { 1 } else { 0 })
}
