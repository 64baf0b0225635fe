//! `kpi email`: emails one weekly report: snapshot, MIME, SMTP, at most once per recipient list.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kpi::config::Config;
use kpi::Result;

use super::Project;

/// Arguments of `kpi email`.
#[derive(Debug, clap::Args)]
pub struct EmailArgs {
    /// Dashboard name.
    pub dashboard: String,
    /// Week such as 2026-W47 (default: the latest complete week).
    #[arg(long)]
    pub week: Option<String>,
    /// Recipients, comma-separated (default: the dashboard's `email.to`).
    #[arg(long, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Also write the message to this .eml file.
    #[arg(long)]
    pub eml: Option<PathBuf>,
    /// Build the message (and the .eml) without sending.
    #[arg(long)]
    pub dry_run: bool,
    /// Send again even if the send log says it was sent (same Message-ID).
    #[arg(long)]
    pub resend: bool,
}

/// Emails one weekly report: snapshot, MIME, SMTP, at most once per recipient list.
pub async fn run(config: &Arc<Config>, args: EmailArgs) -> Result<i32> {
    let EmailArgs {
        dashboard,
        week,
        to,
        eml,
        dry_run,
        resend,
    } = args;

    let started = Instant::now();
    let project = Project::open(config).await?;
    let context = project.report_context();
    let (definition, period) = context.dashboard_week(&dashboard, week.as_deref())?;
    let summary = kpi::email::run(
        &context,
        kpi::email::Request {
            dashboard: definition,
            week: period,
            to,
            eml: eml.as_deref(),
            dry_run,
            resend,
        },
    )
    .await?;
    let email = &summary.email;
    eprintln!(
        "kpi email: \"{}\" to {} ({}; snapshot {}{})",
        email.subject,
        email.recipients.join(", "),
        email.message_id,
        summary.snapshot.id,
        if summary.snapshot_created {
            ", new"
        } else {
            ""
        }
    );
    if let Some(path) = &eml {
        eprintln!("kpi email: wrote {}", path.display());
    }
    match summary.outcome {
        None => eprintln!("kpi email: dry run, not sent"),
        Some(kpi::email::Outcome::Sent(record, _)) => eprintln!(
            "kpi email: accepted by {}:{} after {} attempt(s), {:.2} s from start: {}",
            config.email.smtp_host,
            config.email.smtp_port,
            record.attempts,
            started.elapsed().as_secs_f64(),
            record.smtp_reply.unwrap_or_default()
        ),
        Some(kpi::email::Outcome::AlreadySent(record)) => eprintln!(
            "kpi email: already sent at {} ({}); nothing to do (--resend sends again)",
            record.updated_at.to_rfc3339(),
            record.message_id
        ),
        Some(kpi::email::Outcome::InProgress(record)) => {
            eprintln!(
                "kpi email: a send of this report to these recipients is recorded as in progress since {} ({}).\n\
                 If that process died after the SMTP server accepted the message, it was delivered; check for Message-ID {}.\n\
                 To send again under the same Message-ID (receivers that deduplicate drop a copy): --resend",
                record.started_at.to_rfc3339(),
                record.message_id,
                record.message_id
            );
            return Ok(3);
        }
    }
    Ok(0)
}
