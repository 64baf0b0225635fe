//! `kpi share`: prints a signed link to a report or snapshot that opens without a token until
//! it expires.

use std::sync::Arc;

use kpi::config::Config;
use kpi::links::Scope;
use kpi::{attribution, Error, Result};

use super::Project;

/// Arguments of `kpi share`.
#[derive(Debug, clap::Args)]
pub struct ShareArgs {
    /// Dashboard name.
    pub dashboard: String,
    /// Week such as 2026-W47 (default: the latest complete week).
    #[arg(long)]
    pub week: Option<String>,
    /// A snapshot id of that week: link to the snapshot instead of the live report.
    #[arg(long)]
    pub snapshot: Option<String>,
    /// How long the link works, such as 7d or 12h.
    #[arg(long, default_value = "7d")]
    pub expires: String,
}

/// Prints the signed absolute URL under `email.public_url`.
pub async fn run(config: &Arc<Config>, args: ShareArgs) -> Result<i32> {
    let signer = config.signer().ok_or_else(|| {
        Error::input(
            "no_signing_key",
            "links are signed with server.signing_key: set it in kpi.toml or KPI_SIGNING_KEY (e.g. `openssl rand -hex 32`), the same key the server uses",
        )
    })?;
    let lifetime = attribution::parse_duration(&args.expires)
        .ok()
        .filter(|d| *d > chrono::Duration::zero())
        .ok_or_else(|| {
            Error::input(
                "bad_argument",
                format!(
                    "--expires `{}`: use a duration such as 7d or 12h",
                    args.expires
                ),
            )
        })?;
    let project = Project::open(config).await?;
    let context = project.report_context();
    let (definition, period) = context.dashboard_week(&args.dashboard, args.week.as_deref())?;
    let week = context.calendar.label(period);
    let scope = match args.snapshot {
        Some(id) => Scope::Snapshot {
            dashboard: definition.name.clone(),
            week,
            id,
        },
        None => Scope::Report {
            dashboard: definition.name.clone(),
            week,
        },
    };
    let expires = chrono::Utc::now() + lifetime;
    println!("{}", signer.link(&config.email.public_url, &scope, expires));
    eprintln!(
        "kpi share: valid until {} (UTC)",
        expires.format("%Y-%m-%d %H:%M")
    );
    Ok(0)
}
