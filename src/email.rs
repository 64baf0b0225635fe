//! The report email: a MIME message built from a snapshot, sent over SMTP at most once per
//! dashboard, week and recipient list.
//!
//! The message (lettre builds the MIME) is `multipart/mixed`: a `multipart/alternative` of a
//! plain-text part and a `multipart/related` HTML part whose charts are PNG parts referenced by
//! `cid:`, then the report CSV as an attachment. The HTML uses tables and inline styles, no
//! script and no external image, so common clients render it as sent. Its Message-ID is derived
//! from the dashboard, week, snapshot id and recipient list, so a resent copy of the same email
//! has the same Message-ID and receivers that deduplicate drop it.
//!
//! At most once: before connecting, a send claims `{send_log}/{key}.json` with create-only
//! semantics (one winner across processes, restarts and hosts: the log may be an S3 prefix). After the SMTP server accepts the
//! message the record becomes `sent`. The remaining window is between the server's acceptance
//! and that write: if the process dies there, the record stays `sending`, and no later run
//! sends again on its own; `kpi email --resend` sends again under the same Message-ID.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, EmailConfig, SmtpTls};
use crate::error::{Error, Result};
use crate::metrics::format_display;
use crate::render::charts;
use crate::report::{Report, Tile};
use crate::snapshot::Snapshot;

/// A built email.
pub struct Email {
    /// The message.
    pub message: Message,
    /// Its Message-ID (with angle brackets).
    pub message_id: String,
    /// Subject.
    pub subject: String,
    /// Recipients as given.
    pub recipients: Vec<String>,
}

/// Short month-day range: `Nov 16–22`, `Nov 30–Dec 6`.
fn day_range(report: &Report) -> String {
    let (start, end) = (report.start, report.end);
    if start.format("%b").to_string() == end.format("%b").to_string() {
        format!("{}–{}", start.format("%b %-d"), end.format("%-d"))
    } else {
        format!("{}–{}", start.format("%b %-d"), end.format("%b %-d"))
    }
}

/// The key of a (dashboard, week, recipients) send: recipients sorted, case-folded.
pub fn send_key(dashboard: &str, week: &str, recipients: &[String]) -> String {
    let mut sorted: Vec<String> = recipients.iter().map(|r| r.trim().to_lowercase()).collect();
    sorted.sort();
    sorted.dedup();
    let mut hasher = Sha256::new();
    hasher.update(format!("{dashboard}\n{week}\n{}", sorted.join(",")).as_bytes());
    crate::digest::short_hex(&hasher.finalize(), 10)
}

fn tile_line(tile: &Tile) -> String {
    // Full amounts in the text part: a reader may copy them.
    let shown =
        |value: Option<f64>| format_display(tile.unit, tile.currency.as_deref(), value, false);
    let mut line = format!("{}: {}", tile.label, shown(tile.value));
    if let Some(reason) = &tile.unavailable {
        line.push_str(&format!(" (unavailable: {reason})"));
    }
    if tile.maturing {
        line.push_str(" (cohort still maturing: not compared)");
    }
    for (name, words) in [
        ("previous", "vs previous week"),
        (
            "previous_window",
            "vs the same point of the previous window",
        ),
        ("year_ago", "vs a year ago"),
    ] {
        if let Some(c) = tile.comparisons.get(name) {
            let words = c
                .basis
                .as_ref()
                .map_or(words.to_string(), |b| format!("vs {b}"));
            line.push_str(&format!(
                "; {} {words} ({}, {})",
                c.change_ratio
                    .map(|r| format!("{:+.1}%", r * 100.0))
                    .unwrap_or_else(|| "—".into()),
                shown(c.value),
                c.period
            ));
        }
    }
    if let Some(target) = tile.target {
        line.push_str(&format!("; target {}", shown(Some(target))));
    }
    line
}

/// The plain-text alternative: the same numbers as the HTML.
pub fn text_body(report: &Report, live: &str, snapshot: &str) -> String {
    let mut out = format!(
        "{} — {} ({} to {}, {})\nAttribution: {}. Definitions {}.\n",
        report.title,
        report.week,
        report.start,
        report.end,
        report.time_zone,
        report.attribution.label,
        report.definitions_version
    );
    for banner in &report.banners {
        out.push_str(&format!("! {banner}\n"));
    }
    out.push_str("\nSummary\n");
    for sentence in &report.summary {
        out.push_str(&format!("- {}\n", sentence.text));
    }
    out.push_str("\nHeadline KPIs\n");
    for tile in &report.primary {
        out.push_str(&format!("- {}\n", tile_line(tile)));
    }
    for section in &report.sections {
        out.push_str(&format!("\n{}\n", section.title));
        for tile in &section.tiles {
            out.push_str(&format!("- {}\n", tile_line(tile)));
        }
    }
    out.push_str(&format!(
        "\nLive report: {live}\nThis snapshot: {snapshot}\nEvery number is in the attached CSV.\n"
    ));
    out
}

/// Builds the email of a snapshot for `recipients`. With a `signer`, the links to the live
/// report and the snapshot are signed, valid for `email.link_lifetime` from the snapshot's time
/// (so the same snapshot always gives the same message).
pub fn build(
    snapshot: &Snapshot,
    config: &EmailConfig,
    signer: Option<&crate::links::Signer>,
    recipients: &[String],
) -> Result<Email> {
    if recipients.is_empty() {
        return Err(Error::input(
            "no_recipients",
            "no recipients: pass --to a@x.example,b@y.example or set `email.to` in the dashboard",
        ));
    }
    let report = snapshot.report()?;
    let live_scope = crate::links::Scope::Report {
        dashboard: report.dashboard.clone(),
        week: report.week.clone(),
    };
    let frozen_scope = crate::links::Scope::Snapshot {
        dashboard: report.dashboard.clone(),
        week: report.week.clone(),
        id: snapshot.id.clone(),
    };
    let expires = snapshot.taken_at + config.link_lifetime;
    let link = |scope: &crate::links::Scope| match signer {
        Some(signer) => signer.link(&config.public_url, scope, expires),
        None => format!("{}{}", config.public_url, scope.path()),
    };
    let (live, frozen) = (link(&live_scope), link(&frozen_scope));
    let subject = format!(
        "{} — {} ({})",
        report.title,
        report.week,
        day_range(&report)
    );
    let key = send_key(&report.dashboard, &report.week, recipients);
    let mut hasher = Sha256::new();
    hasher.update(format!("{key}\n{}", snapshot.id).as_bytes());
    let digest = crate::digest::short_hex(&hasher.finalize(), 12);
    let domain = config
        .from
        .rsplit('@')
        .next()
        .map(|d| d.trim_end_matches('>').to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "kpi.localhost".into());
    let message_id = format!(
        "<kpi.{}.{}.{digest}@{domain}>",
        report.dashboard, report.week
    );

    let from: Mailbox = config.from.parse().map_err(|e| {
        Error::input(
            "bad_address",
            format!("email.from `{}` is not an address: {e}", config.from),
        )
    })?;
    let mut builder = Message::builder()
        .from(from)
        .subject(subject.clone())
        .message_id(Some(message_id.clone()));
    for recipient in recipients {
        let mailbox: Mailbox = recipient.trim().parse().map_err(|e| {
            Error::input(
                "bad_address",
                format!("recipient `{recipient}` is not an address: {e}"),
            )
        })?;
        builder = builder.to(mailbox);
    }
    let png = ContentType::parse("image/png").map_err(|e| Error::internal(e.to_string()))?;
    let mut related = MultiPart::related().singlepart(SinglePart::html(
        crate::render::pages::email_body(&report, &live, &frozen)?,
    ));
    for chart in &report.charts {
        let bytes = charts::png(chart).map_err(Error::internal)?;
        related = related.singlepart(
            Attachment::new_inline(format!("chart-{}", chart.name)).body(bytes, png.clone()),
        );
    }
    let csv = ContentType::parse("text/csv; charset=utf-8")
        .map_err(|e| Error::internal(e.to_string()))?;
    let message = builder
        .multipart(
            MultiPart::mixed()
                .multipart(
                    MultiPart::alternative()
                        .singlepart(SinglePart::plain(text_body(&report, &live, &frozen)))
                        .multipart(related),
                )
                .singlepart(
                    Attachment::new(format!("{}-{}.csv", report.dashboard, report.week))
                        .body(crate::report::to_csv(&report), csv),
                ),
        )
        .map_err(|e| Error::internal(format!("cannot build the email: {e}")))?;
    Ok(Email {
        message,
        message_id,
        subject,
        recipients: recipients.to_vec(),
    })
}

/// One entry of the send log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRecord {
    /// Key (dashboard, week, recipients).
    pub key: String,
    /// Dashboard.
    pub dashboard: String,
    /// Week.
    pub week: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Snapshot sent.
    pub snapshot: String,
    /// Message-ID.
    pub message_id: String,
    /// `sending`, `sent` or `failed`.
    pub status: String,
    /// SMTP attempts made.
    pub attempts: u32,
    /// Last error.
    pub error: Option<String>,
    /// When the send was claimed.
    pub started_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The SMTP server's reply to the accepted message.
    pub smtp_reply: Option<String>,
}

/// The send log: one JSON object per (dashboard, week, recipients), in a folder or under an S3
/// prefix (`email.send_log`), so servers on several hosts share the at-most-once guarantee.
pub struct SendLog {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    /// Where it is, for messages.
    location: String,
}

/// What claiming a send found.
pub enum Claim {
    /// This process owns the send now.
    Claimed(SendRecord),
    /// It was sent already.
    AlreadySent(SendRecord),
    /// Another process is sending it, or one died after starting (see the module docs).
    InProgress(SendRecord),
}

impl SendLog {
    /// The log of `config` (`email.send_log`, with the `[data.s3]` settings for `s3://`).
    pub fn open(config: &Config) -> Result<Self> {
        let root = &config.email.send_log;
        let (store, prefix, _) = crate::engine::open_store_at(root, &config.s3)?;
        Ok(Self {
            store,
            root: prefix,
            location: root.url(),
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        self.root.clone().join(format!("{key}.json").as_str())
    }

    fn unavailable(&self, error: impl std::fmt::Display) -> Error {
        Error::unavailable(
            "send_log",
            format!("the send log at {} cannot be used: {error}", self.location),
        )
    }

    async fn put(&self, record: &SendRecord, mode: PutMode) -> object_store::Result<()> {
        let json = serde_json::to_vec_pretty(record).unwrap_or_default();
        let options = PutOptions {
            mode,
            ..Default::default()
        };
        self.store
            .put_opts(&self.path(&record.key), PutPayload::from(json), options)
            .await
            .map(|_| ())
    }

    /// The record under `key` and the version to update it from, when there is one.
    async fn read(&self, key: &str) -> Result<Option<(SendRecord, UpdateVersion)>> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => {
                let version = UpdateVersion {
                    e_tag: result.meta.e_tag.clone(),
                    version: result.meta.version.clone(),
                };
                let bytes = result.bytes().await.map_err(|e| self.unavailable(e))?;
                let record = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::internal(format!("send log {key}: {e}")))?;
                Ok(Some((record, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.unavailable(error)),
        }
    }

    /// Claims a send: create-only, so one process wins on any number of hosts. A failed earlier
    /// send may be claimed again, and with `resend` an interrupted or completed one: by a
    /// conditional update, so of several hosts re-claiming at once exactly one wins (on a local
    /// folder, which has no conditional update, one host is assumed).
    pub async fn claim(&self, record: SendRecord, resend: bool) -> Result<Claim> {
        match self.put(&record, PutMode::Create).await {
            Ok(()) => return Ok(Claim::Claimed(record)),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(error) => return Err(self.unavailable(error)),
        }
        let (existing, version) = self
            .read(&record.key)
            .await?
            .ok_or_else(|| Error::internal("send log entry vanished"))?;
        let failed = existing.status == "failed";
        if !failed && !resend {
            return Ok(if existing.status == "sent" {
                Claim::AlreadySent(existing)
            } else {
                Claim::InProgress(existing)
            });
        }
        let mut retry = record;
        if failed && !resend {
            retry.attempts = existing.attempts;
        }
        match self.put(&retry, PutMode::Update(version)).await {
            Ok(()) => Ok(Claim::Claimed(retry)),
            Err(object_store::Error::Precondition { .. }) => {
                // Another host re-claimed it between our read and our write.
                let latest = self
                    .read(&retry.key)
                    .await?
                    .map(|(r, _)| r)
                    .unwrap_or(existing);
                Ok(Claim::InProgress(latest))
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                self.put(&retry, PutMode::Overwrite)
                    .await
                    .map_err(|e| self.unavailable(e))?;
                Ok(Claim::Claimed(retry))
            }
            Err(error) => Err(self.unavailable(error)),
        }
    }

    /// Records the outcome of a claimed send.
    pub async fn update(&self, record: &SendRecord) -> Result<()> {
        self.put(record, PutMode::Overwrite)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// Every record, newest first.
    pub async fn list(&self) -> Vec<SendRecord> {
        let metas: Vec<ObjectMeta> = match self.store.list(Some(&self.root)).try_collect().await {
            Ok(metas) => metas,
            Err(_) => return Vec::new(),
        };
        let mut records = Vec::new();
        for meta in metas
            .iter()
            .filter(|m| m.location.extension() == Some("json"))
        {
            if let Ok(result) = self.store.get(&meta.location).await {
                if let Ok(bytes) = result.bytes().await {
                    if let Ok(record) = serde_json::from_slice::<SendRecord>(&bytes) {
                        records.push(record);
                    }
                }
            }
        }
        records.sort_by_key(|r: &SendRecord| std::cmp::Reverse(r.updated_at));
        records
    }
}

/// Sends a short plain-text message (an alert) over the configured SMTP server, once.
pub async fn send_text(
    config: &EmailConfig,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<()> {
    let from = config
        .from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| Error::input("email_from", format!("email.from `{}`: {e}", config.from)))?;
    let mut builder = lettre::Message::builder().from(from).subject(subject);
    for recipient in to {
        let mailbox = recipient
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| Error::input("email_to", format!("`{recipient}`: {e}")))?;
        builder = builder.to(mailbox);
    }
    let message = builder
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body.to_string())
        .map_err(|e| Error::internal(format!("alert email: {e}")))?;
    transport(config)?
        .send(message)
        .await
        .map(|_| ())
        .map_err(|error| {
            Error::unavailable(
                "smtp_failed",
                format!(
                    "{}:{} did not accept the alert email: {}",
                    config.smtp_host,
                    config.smtp_port,
                    smtp_error_text(config, &error)
                ),
            )
        })
}

fn transport(config: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let host = config.smtp_host.as_str();
    let parameters = || -> Result<TlsParameters> {
        let mut builder = TlsParameters::builder(host.to_string());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::input(
                    "smtp_ca_file",
                    format!("email.ca_file {}: {e}", path.display()),
                )
            })?;
            let certificate = Certificate::from_pem(&pem).map_err(|e| {
                Error::input(
                    "smtp_ca_file",
                    format!(
                        "email.ca_file {} is not a PEM certificate: {e}",
                        path.display()
                    ),
                )
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        builder
            .build_rustls()
            .map_err(|e| Error::input("smtp", format!("TLS settings for `{host}`: {e}")))
    };
    let tls = match config.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::StartTls => Tls::Required(parameters()?),
        SmtpTls::Tls => Tls::Wrapper(parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .tls(tls)
        .port(config.smtp_port)
        .timeout(Some(Duration::from_secs(30)));
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// Counts one email by outcome (`sent`, or `failed` after every retry).
fn count_send(outcome: &str) {
    crate::telemetry::count(
        "kpi_smtp_sends_total",
        "Emails by outcome: sent, failed (after every retry).",
        &[("outcome", outcome)],
    );
}

/// An SMTP failure in words: which server, and for certificate problems why and what to set.
fn smtp_error_text(config: &EmailConfig, error: &lettre::transport::smtp::Error) -> String {
    let server = format!("{}:{}", config.smtp_host, config.smtp_port);
    // lettre's message already carries its causes (rustls' reason, such as UnknownIssuer).
    let text = error.to_string();
    let certificate = text.contains("certificate") || text.contains("TLS") || error.is_tls();
    if certificate {
        let hint = if config.ca_file.is_some() {
            "check that email.ca_file holds the CA that signed the server's certificate and that the certificate names this host"
        } else {
            "if the relay's certificate is signed by a private CA, set email.ca_file (KPI_SMTP_CA_FILE) to that CA's PEM file"
        };
        format!("TLS with {server} failed: {text}; {hint}")
    } else {
        format!("{server}: {text}")
    }
}

/// What a delivery did.
pub enum Outcome {
    /// Accepted by the SMTP server now.
    Sent(SendRecord, Duration),
    /// Sent before; nothing done.
    AlreadySent(SendRecord),
    /// Recorded as in progress (another process, or one that died mid-send); nothing done.
    InProgress(SendRecord),
}

/// Sends `email` at most once per (dashboard, week, recipients), with retries and backoff.
pub async fn deliver(
    email: &Email,
    snapshot: &Snapshot,
    config: &EmailConfig,
    log: &SendLog,
    resend: bool,
) -> Result<Outcome> {
    let now = Utc::now();
    let record = SendRecord {
        key: send_key(&snapshot.dashboard, &snapshot.week, &email.recipients),
        dashboard: snapshot.dashboard.clone(),
        week: snapshot.week.clone(),
        recipients: email.recipients.clone(),
        snapshot: snapshot.id.clone(),
        message_id: email.message_id.clone(),
        status: "sending".into(),
        attempts: 0,
        error: None,
        started_at: now,
        updated_at: now,
        smtp_reply: None,
    };
    let mut record = match log.claim(record, resend).await? {
        Claim::Claimed(record) => record,
        Claim::AlreadySent(record) => return Ok(Outcome::AlreadySent(record)),
        Claim::InProgress(record) => return Ok(Outcome::InProgress(record)),
    };
    let transport = transport(config)?;
    let started = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        record.attempts += 1;
        match transport.send(email.message.clone()).await {
            Ok(response) => {
                let elapsed = started.elapsed();
                if std::env::var_os("KPI_TEST_EXIT_AFTER_SMTP_ACCEPT").is_some() {
                    // Test hook: die in the window between acceptance and the log update.
                    std::process::exit(9);
                }
                count_send("sent");
                record.status = "sent".into();
                record.error = None;
                record.smtp_reply = Some(response.message().collect::<Vec<_>>().join(" "));
                record.updated_at = Utc::now();
                log.update(&record).await?;
                tracing::info!(
                    "sent {} {} to {} ({})",
                    record.dashboard,
                    record.week,
                    record.recipients.join(", "),
                    record.message_id
                );
                return Ok(Outcome::Sent(record, elapsed));
            }
            Err(error) => {
                let error = smtp_error_text(config, &error);
                record.error = Some(error.clone());
                record.updated_at = Utc::now();
                let last = record.attempts > config.retries;
                record.status = if last { "failed" } else { "sending" }.into();
                log.update(&record).await?;
                tracing::warn!(
                    "SMTP attempt {} for {} {} failed: {error}",
                    record.attempts,
                    record.dashboard,
                    record.week
                );
                if last {
                    count_send("failed");
                } else {
                    crate::telemetry::count(
                        "kpi_smtp_retries_total",
                        "SMTP attempts that failed and were retried.",
                        &[],
                    );
                }
                if last {
                    return Err(Error::unavailable(
                        "smtp_failed",
                        format!(
                            "{}:{} did not accept the email after {} attempts: {error}; the failure is in the send log (/sends) and the next run retries",
                            config.smtp_host, config.smtp_port, record.attempts
                        ),
                    ));
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
}

/// What `kpi email` (and the scheduler) asks for.
pub struct Request<'a> {
    /// Dashboard.
    pub dashboard: &'a crate::defs::Dashboard,
    /// Week.
    pub week: crate::time::Period,
    /// Recipients (empty: the dashboard's `email.to`).
    pub to: Vec<String>,
    /// Also write the message to this `.eml` file.
    pub eml: Option<&'a Path>,
    /// Build (and write the .eml) but do not send.
    pub dry_run: bool,
    /// Send even when the log says it was sent or is in progress.
    pub resend: bool,
}

/// What a run did, for the command line and the log.
pub struct Summary {
    /// The snapshot used.
    pub snapshot: Snapshot,
    /// Whether the snapshot was taken now.
    pub snapshot_created: bool,
    /// The email.
    pub email: Email,
    /// The delivery, unless dry-run.
    pub outcome: Option<Outcome>,
}

/// Takes the snapshot, builds the email, writes the `.eml`, sends at most once.
pub async fn run(context: &crate::report::Context<'_>, request: Request<'_>) -> Result<Summary> {
    let store = crate::snapshot::Store::open(context.config)?;
    let taken = store.take(context, request.dashboard, request.week).await?;
    let recipients = if request.to.is_empty() {
        request.dashboard.email_to.clone()
    } else {
        request.to.clone()
    };
    let signer = context.config.signer();
    let email = build(
        &taken.snapshot,
        &context.config.email,
        signer.as_ref(),
        &recipients,
    )?;
    if let Some(path) = request.eml {
        crate::output::write_atomically(path, &email.message.formatted())?;
    }
    let outcome = if request.dry_run {
        None
    } else {
        Some(
            deliver(
                &email,
                &taken.snapshot,
                &context.config.email,
                &SendLog::open(context.config)?,
                request.resend,
            )
            .await?,
        )
    };
    Ok(Summary {
        snapshot: taken.snapshot,
        snapshot_created: taken.created,
        email,
        outcome,
    })
}

/// The sends due now: for each dashboard with a schedule, its latest complete week once the
/// schedule's weekday and time (local) after that week have come. Only that week: a server
/// that was down for a month does not mail a month of reports.
pub fn due(context: &crate::report::Context<'_>) -> Vec<(String, crate::time::Period)> {
    use chrono::{Datelike, TimeZone};
    let mut out = Vec::new();
    for dashboard in context.registry.dashboards.values() {
        let Some(schedule) = dashboard.schedule else {
            continue;
        };
        if dashboard.email_to.is_empty() {
            continue;
        }
        let week = context.latest_complete_week(dashboard);
        if !context.complete(dashboard, week) {
            continue;
        }
        // The first schedule day on or after the day after the week.
        let mut day = week.end;
        while day.weekday() != schedule.weekday {
            day = day.succ_opt().unwrap_or(day);
        }
        let local = day.and_time(schedule.time);
        let Some(at) = context
            .config
            .time_zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
        else {
            continue;
        };
        if context.now >= at {
            out.push((dashboard.name.clone(), week));
        }
    }
    out
}
