//! `kpi.toml` plus `KPI_*` environment variables, resolved into one validated [`Config`].
//!
//! Parsing is two steps, as everywhere in kpi: the file deserializes into plain raw structs
//! (unknown keys are errors), environment overrides are applied on top, and one validation pass
//! turns the result into [`Config`], reporting *every* problem at once with the key, the file
//! line (or the variable that set it) and a fix. This module reads no data and knows no HTTP.
//!
//! Every setting and its default:
//!
//! | key | env | default |
//! |---|---|---|
//! | `data.root` | `KPI_DATA` | `./data` (relative to the project) |
//! | `data.refresh_interval_ms` | `KPI_REFRESH_INTERVAL_MS` | `2000` (`kpi serve` lists the data root this often; requests never list) |
//! | `data.s3.endpoint` | `KPI_S3_ENDPOINT`, `AWS_ENDPOINT_URL` | AWS |
//! | `data.s3.region` | `KPI_S3_REGION`, `AWS_REGION` | `us-east-1` |
//! | `data.s3.access_key_id` / `secret_access_key` | `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` | none (anonymous) |
//! | `data.s3.allow_http` | `KPI_S3_ALLOW_HTTP` | `false` |
//! | `time.time_zone` | `KPI_TIME_ZONE` | `UTC` |
//! | `time.week_start` | `KPI_WEEK_START` | `monday` |
//! | `server.addr` | `KPI_ADDR` | `127.0.0.1:8080` |
//! | `server.sql_timeout_ms` | `KPI_SQL_TIMEOUT_MS` | `30000` |
//! | `server.sql_row_limit` | `KPI_SQL_ROW_LIMIT` | `10000` |
//! | `server.reload_interval_ms` | `KPI_RELOAD_INTERVAL_MS` | `1000` |
//! | `server.request_timeout_ms` | `KPI_REQUEST_TIMEOUT_MS` | `300000` (heavy routes; cheap pages 15 s) |
//! | `server.max_concurrent_builds` | `KPI_MAX_CONCURRENT_BUILDS` | number of cores (heavy computations at once; the rest queue until their deadline, then 503 with `Retry-After`) |
//! | `server.schedule_interval_ms` | `KPI_SCHEDULE_INTERVAL_MS` | `30000` (scheduled emails) |
//! | `server.api_token` | `KPI_API_TOKEN` | none: writes, SQL and `/metrics` are open (loopback only; `kpi serve` refuses other addresses without one) |
//! | `server.page_access` | `KPI_PAGE_ACCESS` | `open` on a loopback address, `signed` otherwise |
//! | `server.signing_key` | `KPI_SIGNING_KEY` | none (needed by `signed` pages, `kpi share` and signed email links) |
//! | `server.signing_keys_previous` | | none (rotated keys whose links stay valid) |
//! | `engine.memory_limit_mb` | `KPI_MEMORY_LIMIT_MB` | `2048` (the one budget: 7/8 query state, 1/8 the server's kept reports and answers) |
//! | `engine.target_partitions` | `KPI_TARGET_PARTITIONS` | number of cores |
//! | `engine.cluster` | `KPI_CLUSTER` | none: every query in this process (`df://host:port`: rollup builds and analyst SQL on an Apache Ballista cluster; needs the `cluster` build feature) |
//! | `engine.cluster_job_timeout_ms` | `KPI_CLUSTER_JOB_TIMEOUT_MS` | `3600000` (a rollup query on the cluster fails after it; analyst SQL has `server.sql_timeout_ms`) |
//! | `attribution.touches` | | `reporting.touches` (a view: `touch_id, entity_id, touched_at, channel, campaign`) |
//! | `attribution.conversions` | | `reporting.conversions` (`conversion_id, entity_id, converted_at, conversion_type, revenue`) |
//! | `attribution.model` | `KPI_ATTRIBUTION_MODEL` | `linear` |
//! | `attribution.lookback` | `KPI_ATTRIBUTION_LOOKBACK` | `30d` |
//! | `attribution.half_life` | | `7d` (time decay) |
//! | `snapshots.root` | `KPI_SNAPSHOTS` | `./.kpi/snapshots` (or `s3://bucket/prefix`) |
//! | `rollups.root` | `KPI_ROLLUPS` | `./.kpi/rollups` (or `s3://bucket/prefix`, with the `[data.s3]` settings) |
//! | `rollups.enabled` | `KPI_ROLLUPS_ENABLED` | `true` (`false`: every number straight from the views, the reference path) |
//! | `rollups.background` | `KPI_ROLLUPS_BACKGROUND` | `true` (`kpi serve` builds the latest reports when data or definitions change) |
//! | `rollups.run_kib` | `KPI_ROLLUPS_RUN_KIB` | `16384` (Parquet KiB one query over wide misses reads; more are computed in runs of buckets) |
//! | `email.from` | `KPI_EMAIL_FROM` | `kpi reports <kpi@localhost>` |
//! | `email.smtp_host`, `smtp_port` | `KPI_SMTP_HOST`, `KPI_SMTP_PORT` | `127.0.0.1`, by `tls`: 25 / 587 / 465 |
//! | `email.tls` | `KPI_SMTP_TLS` | `starttls` (`none` for a local relay, `tls` for SMTPS) |
//! | `email.ca_file` | `KPI_SMTP_CA_FILE` | none (a private CA's PEM, added to the bundled roots) |
//! | `email.username`, `password` | `KPI_SMTP_USERNAME`, `KPI_SMTP_PASSWORD` | none (no authentication) |
//! | `email.public_url` | `KPI_PUBLIC_URL` | `http://127.0.0.1:8080` (links in emails) |
//! | `email.retries` | | `3` (backoff 1 s, 2 s, 4 s) |
//! | `email.link_lifetime` | | `30d` (signed links in emails, from the snapshot's time) |
//! | `email.send_log` | `KPI_SEND_LOG` | `./.kpi/sends` (or `s3://bucket/prefix`, shared by every host) |
//! | `alerts.log` | `KPI_ALERT_LOG` | `./.kpi/alerts` (or `s3://bucket/prefix`, shared by every host) |
//! | `alerts.signing_key` | `KPI_ALERT_SIGNING_KEY` | none: webhook bodies unsigned |
//! | `alerts.retries` | | `3` |
//! | `sources.<name>.kind` | | the source's name |
//! | `sources.<name>.owner` | | `unassigned` |
//! | `sources.<name>.lag_days` | | `1` (complete up to yesterday) |
//! | `sources.<name>.ready_by` | | `06:00` (in the reporting time zone) |

pub mod conventions;
mod raw;
mod resolve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// Name of the configuration file at the project root.
pub const CONFIG_FILE: &str = "kpi.toml";

/// A secret setting (token, key, password): never printed by `Debug`, in logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the value, for the one place that uses it (a compare, a signature, a login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Who may open report, chart, export and snapshot pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAccess {
    /// Anyone who reaches the port (the default on a loopback address).
    Open,
    /// A signed, unexpired link or the API token (the default on any other address).
    Signed,
}

/// Where the landed Parquet lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataRoot {
    /// A local folder (absolute after resolution).
    Local(PathBuf),
    /// An S3 bucket and a key prefix (no leading or trailing slash; may be empty).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix under which `<source>/<table>/` folders live.
        prefix: String,
    },
}

impl DataRoot {
    /// Returns the root as a URL string (`file:///...` or `s3://bucket/prefix`).
    pub fn url(&self) -> String {
        match self {
            Self::Local(path) => format!("file://{}", path.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// S3 connection settings; unset values fall back to the standard AWS variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Custom endpoint such as `http://127.0.0.1:9000` for MinIO or moto.
    pub endpoint: Option<String>,
    /// Region; `us-east-1` when nothing says otherwise.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<Secret>,
    /// Whether plain `http://` endpoints are allowed (local test servers).
    pub allow_http: bool,
}

/// A named system that is the source of truth for some metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Name, also the first part of its tables' SQL names (`ads.campaign_daily`).
    pub name: String,
    /// Kind of system: `crm`, `analytics`, `ads`, `email` or a team's own word.
    pub kind: String,
    /// Who to ask about this data.
    pub owner: String,
    /// Free text shown next to the source.
    pub description: String,
    /// Data for day D is expected complete `lag_days` days later ...
    pub lag_days: u32,
    /// ... by this local time in the reporting time zone.
    pub ready_by: NaiveTime,
}

/// Server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address `kpi serve` binds to.
    pub addr: SocketAddr,
    /// Time limit of one analyst SQL query.
    pub sql_timeout_ms: u64,
    /// Maximum rows one analyst SQL query returns (the answer says when it was cut).
    pub sql_row_limit: usize,
    /// How often definition files are checked for changes.
    pub reload_interval_ms: u64,
    /// Time limit of one heavy request (a report, a series, SQL), in milliseconds.
    pub request_timeout_ms: u64,
    /// How often `kpi serve` lists the data root (`data.refresh_interval_ms`): a landed file
    /// is served within this time, and no request lists.
    pub refresh_interval_ms: u64,
    /// Heavy computations (a report, a series, SQL) running at once; more wait their turn.
    pub max_concurrent_builds: usize,
    /// How often scheduled emails are checked, in milliseconds.
    pub schedule_interval_ms: u64,
    /// Bearer token every write, the SQL endpoint and `/metrics` require, when set (required
    /// by `kpi serve` off loopback).
    pub api_token: Option<Secret>,
    /// Who may open report, chart, export and snapshot pages.
    pub page_access: PageAccess,
    /// Key of signed links (`kpi share`, links in emails).
    pub signing_key: Option<Secret>,
    /// Keys replaced by `signing_key` whose links stay valid until they expire.
    pub signing_keys_previous: Vec<Secret>,
}

/// Query engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Memory the engine may use for query state, in MiB.
    pub memory_limit_mb: usize,
    /// Parallelism of one query; 0 means the number of cores.
    pub target_partitions: usize,
    /// The Ballista scheduler rollup builds and analyst SQL run on (`df://host:port`), if any.
    pub cluster: Option<String>,
    /// How long one rollup query may run on the cluster before it fails (milliseconds).
    pub cluster_job_timeout_ms: u64,
}

/// How SMTP connections are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP, for a relay on the same host or network.
    None,
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Email delivery settings.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// Sender address (`Reports <reports@acme.example>`).
    pub from: String,
    /// SMTP server host.
    pub smtp_host: String,
    /// SMTP server port.
    pub smtp_port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// A private CA (PEM) trusted for the relay's certificate, besides the bundled roots.
    pub ca_file: Option<PathBuf>,
    /// SMTP user, when the server needs authentication.
    pub username: Option<String>,
    /// SMTP password (prefer `KPI_SMTP_PASSWORD`).
    pub password: Option<Secret>,
    /// How long the signed links in an email stay valid, from the snapshot's time.
    pub link_lifetime: chrono::Duration,
    /// Base URL of the server as readers reach it, for links in emails.
    pub public_url: String,
    /// SMTP attempts after the first, with exponential backoff from 1 s.
    pub retries: u32,
    /// Where the send log lives (a folder or an S3 prefix).
    pub send_log: DataRoot,
}

/// The attribution table's inputs and the project's default model and lookback.
#[derive(Debug, Clone)]
pub struct AttributionConfig {
    /// View (or table) of touches.
    pub touches: String,
    /// View (or table) of conversions.
    pub conversions: String,
    /// Default model and lookback.
    pub default: crate::attribution::Settings,
    /// Half-life of `time_decay`.
    pub half_life: chrono::Duration,
}

impl AttributionConfig {
    /// Settings for a query: the defaults, with a model and lookback when given.
    pub fn settings(
        &self,
        model: Option<&str>,
        lookback: Option<&str>,
    ) -> std::result::Result<crate::attribution::Settings, String> {
        let model = model.unwrap_or(self.default.model.name());
        let lookback = lookback
            .map(str::to_string)
            .unwrap_or_else(|| crate::attribution::format_duration(self.default.lookback));
        crate::attribution::Settings::parse(model, &lookback, self.half_life)
    }
}

/// The validated configuration every other module uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder holding `kpi.toml`, `metrics/`, `queries/`, `dashboards/`.
    pub project_dir: PathBuf,
    /// Where the landed Parquet lives.
    pub data_root: DataRoot,
    /// S3 connection settings (used when `data_root` is S3).
    pub s3: S3Options,
    /// Reporting time zone.
    pub time_zone: Tz,
    /// First day of a reporting week.
    pub week_start: Weekday,
    /// Configured sources by name.
    pub sources: BTreeMap<String, Source>,
    /// Server settings.
    pub server: ServerConfig,
    /// Engine settings.
    pub engine: EngineConfig,
    /// Attribution inputs and defaults.
    pub attribution: AttributionConfig,
    /// Where snapshots are stored (a folder or an S3 prefix).
    pub snapshots_root: DataRoot,
    /// Email delivery.
    pub email: EmailConfig,
    /// The rollup store.
    pub rollups: RollupsConfig,
    /// Tracking conventions checked on the landed data (`[conventions]`; none by default).
    pub conventions: conventions::Conventions,
    /// Where alert states and deliveries are recorded, and how webhooks are signed.
    pub alerts: AlertsConfig,
}

/// `[alerts]`: the alert log and webhook signing.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Folder or `s3://` prefix of alert states, delivery claims and snoozes.
    pub log: DataRoot,
    /// Key of the `X-Kpi-Signature` HMAC of webhook bodies (none: unsigned).
    pub signing_key: Option<Secret>,
    /// Delivery attempts after the first, with backoff (default 3).
    pub retries: u32,
}

/// Where the rollup store lives and whether it is used (see `rollup`).
#[derive(Debug, Clone)]
pub struct RollupsConfig {
    /// A folder or an S3 prefix.
    pub root: DataRoot,
    /// `false`: every number is computed straight from the views (the reference path).
    pub enabled: bool,
    /// `kpi serve` builds the dashboards' latest reports in the background at start and
    /// whenever data or definitions change (`false`: only when a page is asked for).
    pub background: bool,
    /// Landed Parquet bytes one query computing wide misses may read; more are split into runs
    /// of buckets (`rollups.run_kib`).
    pub run_bytes: u64,
}

/// Values given on the command line, which win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data URL` (clap also fills it from `KPI_DATA`).
    pub data: Option<String>,
    /// `--addr` of `kpi serve`.
    pub addr: Option<String>,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// `kpi.toml:LINE` or the environment variable that set the value.
    pub location: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// How `engine.memory_limit_mb`, the one memory budget, is shared (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryShares {
    /// DataFusion's memory pool: query state (hash tables, sorts) and the build session's kept
    /// views. Sorts and aggregates past their fair share spill to the OS temporary directory;
    /// state that cannot spill (a join's build side) past the pool fails the query with
    /// `resources_exhausted`.
    pub query_pool: usize,
    /// Reports kept by the server (pages and what is rendered from them).
    pub reports: usize,
    /// Metric API answers kept by the server.
    pub answers: usize,
}

impl Config {
    /// The budget's shares: an eighth for the server's kept answers (three quarters of it for
    /// reports, a quarter for metric answers), the rest for query state.
    pub fn memory(&self) -> MemoryShares {
        let budget = self.engine.memory_limit_mb.saturating_mul(1 << 20);
        let kept = budget / 8;
        MemoryShares {
            query_pool: budget - kept,
            reports: kept / 4 * 3,
            answers: kept / 4,
        }
    }

    /// The signer of shared links, when a signing key is set.
    pub fn signer(&self) -> Option<crate::links::Signer> {
        self.server
            .signing_key
            .clone()
            .map(|key| crate::links::Signer::new(key, self.server.signing_keys_previous.clone()))
    }

    /// Returns the reporting calendar (time zone and week start).
    pub fn calendar(&self) -> crate::time::Calendar {
        crate::time::Calendar::new(self.time_zone, self.week_start)
    }

    /// Loads `kpi.toml` from `project_dir` (defaults when absent), applies the environment and
    /// `overrides`, and validates the result.
    pub fn load(project_dir: &Path, overrides: &Overrides) -> Result<Self> {
        let path = project_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(Error::input(
                    "config",
                    format!("cannot read {}: {error}", path.display()),
                ))
            }
        };
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Self::from_parts(project_dir, &text, &env, overrides).map_err(|problems| {
            let lines: Vec<String> = problems
                .iter()
                .map(|problem| format!("{}: {}", problem.location, problem.message))
                .collect();
            Error::input("config", lines.join("\n"))
        })
    }

    /// Resolves a configuration from the file text, an environment lookup and overrides,
    /// returning every problem found. Pure: it reads no process state.
    pub fn from_parts(
        project_dir: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> std::result::Result<Self, Vec<ConfigProblem>> {
        resolve::resolve(project_dir, text, env, overrides)
    }
}

/// Parses `s3://bucket/prefix`, `file:///path` or a plain path (relative to the project).
pub fn parse_data_root(project_dir: &Path, text: &str) -> std::result::Result<DataRoot, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("data root is empty; use a folder such as ./data or s3://bucket/prefix".into());
    }
    if let Some(rest) = text.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{text}` has no bucket; use s3://bucket/prefix"));
        }
        return Ok(DataRoot::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    if text.contains("://") && !text.starts_with("file://") {
        return Err(format!(
            "`{text}`: unsupported storage scheme; use a local path, file:///path or s3://bucket/prefix"
        ));
    }
    let path = PathBuf::from(text.strip_prefix("file://").unwrap_or(text));
    let path = if path.is_absolute() {
        path
    } else {
        project_dir.join(path)
    };
    Ok(DataRoot::Local(normalize(&path)))
}

/// Makes a path absolute and removes `.` and `..` parts without touching the file system
/// (the folder may not exist yet, for `kpi demo`).
fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Returns whether `name` is a plain lowercase SQL identifier.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Returns the 1-based line of byte offset `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Finds the line of `key = ...` inside `[section]`, or of the section header, or 1.
fn key_line(text: &str, section: &str, key: &str) -> usize {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut section_line = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_section = trimmed == header;
            if in_section {
                section_line = Some(index + 1);
            }
            continue;
        }
        if in_section {
            if let Some((name, _)) = trimmed.split_once('=') {
                if name.trim() == key {
                    return index + 1;
                }
            }
        }
    }
    section_line.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        text: &str,
        vars: &[(&str, &str)],
    ) -> std::result::Result<Config, Vec<ConfigProblem>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        Config::from_parts(Path::new("/project"), text, &env, &Overrides::default())
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let config = resolve("", &[]).expect("defaults are valid");
        assert_eq!(
            config.data_root,
            DataRoot::Local(PathBuf::from("/project/data"))
        );
        assert_eq!(config.time_zone, Tz::UTC);
        assert_eq!(config.week_start, Weekday::Mon);
        assert_eq!(config.server.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.sql_timeout_ms, 30_000);
        assert_eq!(config.server.sql_row_limit, 10_000);
    }

    #[test]
    fn file_values_and_sources_are_read() {
        let text = r#"
[data]
root = "s3://lake/landed/"
[time]
time_zone = "America/New_York"
week_start = "sunday"
[sources.ads]
kind = "ads"
owner = "growth@acme.test"
lag_days = 1
ready_by = "06:30"
"#;
        let config = resolve(text, &[]).expect("valid");
        assert_eq!(
            config.data_root,
            DataRoot::S3 {
                bucket: "lake".into(),
                prefix: "landed".into()
            }
        );
        assert_eq!(config.time_zone, chrono_tz::America::New_York);
        assert_eq!(config.week_start, Weekday::Sun);
        let ads = &config.sources["ads"];
        assert_eq!(ads.owner, "growth@acme.test");
        assert_eq!(
            ads.ready_by,
            NaiveTime::from_hms_opt(6, 30, 0).expect("time")
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let text = "[time]\ntime_zone = \"UTC\"\n[data]\nroot = \"./a\"\n";
        let config = resolve(
            text,
            &[
                ("KPI_TIME_ZONE", "Europe/Berlin"),
                ("KPI_DATA", "/elsewhere"),
            ],
        )
        .expect("valid");
        assert_eq!(config.time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(
            config.data_root,
            DataRoot::Local(PathBuf::from("/elsewhere"))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_line() {
        let text = "[time]\ntime_zone = \"Mars/Olympus\"\nweek_start = \"someday\"\n[server]\naddr = \"nowhere\"\n";
        let problems = resolve(text, &[("KPI_SQL_ROW_LIMIT", "many")]).expect_err("invalid");
        let rendered: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.location, p.message))
            .collect();
        assert_eq!(rendered.len(), 4, "{rendered:#?}");
        assert!(rendered[0].starts_with("kpi.toml:2: unknown time zone `Mars/Olympus`"));
        assert!(rendered[1].starts_with("kpi.toml:3: `someday` is not a weekday"));
        assert!(rendered[2].starts_with("kpi.toml:5: `nowhere` is not an address"));
        assert!(rendered[3].starts_with("environment variable KPI_SQL_ROW_LIMIT"));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let problems = resolve("[time]\ntimezone = \"UTC\"\n", &[]).expect_err("unknown key");
        assert_eq!(problems[0].location, "kpi.toml:2");
        assert!(
            problems[0].message.contains("unknown field `timezone`"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn plain_http_endpoint_needs_allow_http() {
        let problems = resolve("[data.s3]\nendpoint = \"http://127.0.0.1:9000\"\n", &[])
            .expect_err("http not allowed");
        assert!(problems[0].message.contains("allow_http"));
        assert!(resolve(
            "[data.s3]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n",
            &[]
        )
        .is_ok());
    }

    #[test]
    fn data_roots_parse() {
        let dir = Path::new("/p");
        assert_eq!(
            parse_data_root(dir, "file:///x/y").expect("ok"),
            DataRoot::Local("/x/y".into())
        );
        assert_eq!(
            parse_data_root(dir, "../d").expect("ok"),
            DataRoot::Local("/d".into())
        );
        assert_eq!(
            parse_data_root(dir, "s3://b").expect("ok"),
            DataRoot::S3 {
                bucket: "b".into(),
                prefix: String::new()
            }
        );
        assert!(parse_data_root(dir, "gs://b/x").is_err());
        assert!(parse_data_root(dir, "s3:///x").is_err());
    }
}
