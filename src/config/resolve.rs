//! Validation of `kpi.toml` section by section: each value comes from the command line, then
//! its `KPI_*` variable, then the file, then its default; every problem is collected with the
//! key's file line (or the variable that set it) and a fix. Pure: reads no process state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;

use super::raw::{
    RawAlerts, RawAttribution, RawConfig, RawData, RawEmail, RawRollups, RawServer, RawSource,
    RawTime,
};
use super::{
    is_identifier, key_line, line_of, parse_bool, parse_data_root, AlertsConfig, AttributionConfig,
    Config, ConfigProblem, DataRoot, EmailConfig, EngineConfig, Overrides, PageAccess,
    RollupsConfig, S3Options, Secret, ServerConfig, SmtpTls, Source, CONFIG_FILE,
};
use crate::attribution::{self, Model, Settings};

/// Resolves the whole configuration, or returns every problem.
pub(super) fn resolve(
    project_dir: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &Overrides,
) -> std::result::Result<Config, Vec<ConfigProblem>> {
    let raw: RawConfig = toml::from_str(text).map_err(|error| {
        let line = error
            .span()
            .map(|span| line_of(text, span.start))
            .unwrap_or(1);
        vec![ConfigProblem {
            location: format!("{CONFIG_FILE}:{line}"),
            message: error.message().to_string(),
        }]
    })?;
    let mut layers = Layers {
        text,
        env,
        overrides,
        problems: Vec::new(),
    };
    let data_root = layers.data_root(project_dir, &raw.data);
    let s3 = layers.s3(&raw.data);
    let (time_zone, week_start) = layers.time(&raw.time);
    let mut server = layers.server(&raw.server);
    server.refresh_interval_ms = layers.number(
        ("data", "refresh_interval_ms", "KPI_REFRESH_INTERVAL_MS"),
        raw.data.refresh_interval_ms,
        2_000,
        10,
    );
    let engine = EngineConfig {
        memory_limit_mb: layers.number(
            ("engine", "memory_limit_mb", "KPI_MEMORY_LIMIT_MB"),
            raw.engine.memory_limit_mb.map(|v| v as u64),
            2_048,
            64,
        ) as usize,
        target_partitions: layers.number(
            ("engine", "target_partitions", "KPI_TARGET_PARTITIONS"),
            raw.engine.target_partitions.map(|v| v as u64),
            0,
            0,
        ) as usize,
        cluster: layers.cluster(raw.engine.cluster.as_ref()),
        cluster_job_timeout_ms: layers.number(
            (
                "engine",
                "cluster_job_timeout_ms",
                "KPI_CLUSTER_JOB_TIMEOUT_MS",
            ),
            raw.engine.cluster_job_timeout_ms,
            3_600_000,
            1_000,
        ),
    };
    let attribution = layers.attribution(raw.attribution);
    let snapshots_root = layers.snapshots_root(project_dir, raw.snapshots.root.as_ref());
    let email = layers.email(project_dir, &raw.email);
    let rollups = layers.rollups(project_dir, &raw.rollups);
    let sources = layers.sources(raw.sources);
    let alerts = layers.alerts(project_dir, &raw.alerts);
    let (conventions, problems) = super::conventions::resolve(raw.conventions);
    for (key, message) in problems {
        layers.problem("conventions", &key, None, message);
    }
    match (layers.problems.is_empty(), data_root) {
        (true, Some(data_root)) => Ok(Config {
            project_dir: project_dir.to_path_buf(),
            data_root,
            s3,
            time_zone,
            week_start,
            sources,
            server,
            engine,
            attribution,
            snapshots_root,
            email,
            rollups,
            conventions,
            alerts,
        }),
        _ => Err(layers.problems),
    }
}

/// Where a value may come from, and the problems found so far.
struct Layers<'a> {
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    overrides: &'a Overrides,
    problems: Vec<ConfigProblem>,
}

/// A key's place: its section, its name, and the variable that can set it.
type Key = (&'static str, &'static str, &'static str);

impl Layers<'_> {
    /// Records a problem at the variable that set the value, or at the key's file line.
    fn problem(&mut self, section: &str, key: &str, origin: Option<&str>, message: String) {
        let location = match origin {
            Some(name) => format!("environment variable {name}"),
            None => format!("{CONFIG_FILE}:{}", key_line(self.text, section, key)),
        };
        self.problems.push(ConfigProblem { location, message });
    }

    /// The first of: a command-line value, the first variable set, the file's value. Also
    /// says which variable (or "command line") it came from, for error locations.
    fn pick(
        &self,
        flag: Option<&String>,
        names: &[&'static str],
        file: Option<&String>,
    ) -> (Option<String>, Option<&'static str>) {
        if let Some(value) = flag {
            return (Some(value.clone()), Some("command line"));
        }
        for name in names {
            if let Some(value) = (self.env)(name) {
                return (Some(value), Some(*name));
            }
        }
        (file.cloned(), None)
    }

    /// A whole number of at least `min`, from its variable or the file, else `default`.
    /// A boolean setting: the variable (`true`/`false`), else the file, else `default`.
    fn flag(&mut self, key: Key, file: Option<bool>, default: bool) -> bool {
        let (section, name, variable) = key;
        match (self.env)(variable) {
            Some(value) => parse_bool(&value).unwrap_or_else(|| {
                self.problem(
                    section,
                    name,
                    Some(variable),
                    format!("`{value}` is not a boolean; use true or false"),
                );
                default
            }),
            None => file.unwrap_or(default),
        }
    }

    fn number(&mut self, key: Key, file: Option<u64>, default: u64, min: u64) -> u64 {
        let (section, name, variable) = key;
        let (value, origin) = match (self.env)(variable) {
            Some(text) => match text.parse::<u64>() {
                Ok(value) => (value, Some(variable)),
                Err(_) => {
                    self.problem(
                        section,
                        name,
                        Some(variable),
                        format!("`{text}` is not a whole number"),
                    );
                    return default;
                }
            },
            None => (file.unwrap_or(default), None),
        };
        if value < min {
            self.problem(
                section,
                name,
                origin,
                format!("must be at least {min}, got {value}"),
            );
            return default;
        }
        value
    }

    /// `engine.cluster`: a `df://host:port` scheduler URL (the port defaults to 50050).
    fn cluster(&mut self, file: Option<&String>) -> Option<String> {
        let (value, origin) = self.pick(None, &["KPI_CLUSTER"], file);
        let value = value.filter(|v| !v.trim().is_empty())?;
        let problem = match url::Url::parse(value.trim()) {
            Ok(url) if url.scheme() == "df" && url.host_str().is_some() => None,
            Ok(url) => Some(format!(
                "`{value}` is a {} URL; use df://host:port (the Ballista scheduler)",
                url.scheme()
            )),
            Err(error) => Some(format!(
                "`{value}` is not a URL ({error}); use df://host:port (the Ballista scheduler)"
            )),
        };
        match problem {
            Some(message) => {
                self.problem("engine", "cluster", origin, message);
                None
            }
            None => Some(value.trim().to_string()),
        }
    }

    fn data_root(&mut self, project_dir: &Path, raw: &RawData) -> Option<DataRoot> {
        let (root, origin) = self.pick(
            self.overrides.data.as_ref(),
            &["KPI_DATA"],
            raw.root.as_ref(),
        );
        match parse_data_root(project_dir, root.as_deref().unwrap_or("./data")) {
            Ok(root) => Some(root),
            Err(message) => {
                self.problem("data", "root", origin, message);
                None
            }
        }
    }

    fn s3(&mut self, raw: &RawData) -> S3Options {
        let allow_http = match (self.env)("KPI_S3_ALLOW_HTTP") {
            Some(value) => parse_bool(&value).unwrap_or_else(|| {
                self.problem(
                    "data.s3",
                    "allow_http",
                    Some("KPI_S3_ALLOW_HTTP"),
                    format!("`{value}` is not a boolean; use true or false"),
                );
                false
            }),
            None => raw.s3.allow_http.unwrap_or(false),
        };
        let s3 = S3Options {
            endpoint: self
                .pick(
                    None,
                    &["KPI_S3_ENDPOINT", "AWS_ENDPOINT_URL"],
                    raw.s3.endpoint.as_ref(),
                )
                .0,
            region: self
                .pick(
                    None,
                    &["KPI_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"],
                    raw.s3.region.as_ref(),
                )
                .0,
            access_key_id: self
                .pick(None, &["AWS_ACCESS_KEY_ID"], raw.s3.access_key_id.as_ref())
                .0,
            secret_access_key: self
                .pick(
                    None,
                    &["AWS_SECRET_ACCESS_KEY"],
                    raw.s3.secret_access_key.as_ref(),
                )
                .0
                .map(Secret::new),
            allow_http,
        };
        if let Some(endpoint) = &s3.endpoint {
            if endpoint.starts_with("http://") && !s3.allow_http {
                self.problem("data.s3", "endpoint", None, format!(
                    "endpoint `{endpoint}` is plain HTTP; set `allow_http = true` under [data.s3] (or KPI_S3_ALLOW_HTTP=true) for a local test server"
                ));
            }
        }
        s3
    }

    fn time(&mut self, raw: &RawTime) -> (Tz, Weekday) {
        let (zone, zone_env) = self.pick(None, &["KPI_TIME_ZONE"], raw.time_zone.as_ref());
        let zone = zone.unwrap_or_else(|| "UTC".to_string());
        let time_zone = zone.parse::<Tz>().unwrap_or_else(|_| {
            self.problem(
                "time",
                "time_zone",
                zone_env,
                format!(
                "unknown time zone `{zone}`; use an IANA name such as `America/New_York` or `UTC`"
            ),
            );
            Tz::UTC
        });
        let (start, start_env) = self.pick(None, &["KPI_WEEK_START"], raw.week_start.as_ref());
        let start = start.unwrap_or_else(|| "monday".to_string());
        let week_start = start
            .to_ascii_lowercase()
            .parse::<Weekday>()
            .unwrap_or_else(|_| {
                self.problem(
                    "time",
                    "week_start",
                    start_env,
                    format!("`{start}` is not a weekday; use monday, tuesday, ..., sunday"),
                );
                Weekday::Mon
            });
        (time_zone, week_start)
    }

    fn server(&mut self, raw: &RawServer) -> ServerConfig {
        let (addr_text, addr_env) = self.pick(
            self.overrides.addr.as_ref(),
            &["KPI_ADDR"],
            raw.addr.as_ref(),
        );
        let addr_text = addr_text.unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let addr = addr_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            self.problem(
                "server",
                "addr",
                addr_env,
                format!("`{addr_text}` is not an address; use IP:PORT such as 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        ServerConfig {
            addr,
            sql_timeout_ms: self.number(
                ("server", "sql_timeout_ms", "KPI_SQL_TIMEOUT_MS"),
                raw.sql_timeout_ms,
                30_000,
                1,
            ),
            sql_row_limit: self.number(
                ("server", "sql_row_limit", "KPI_SQL_ROW_LIMIT"),
                raw.sql_row_limit.map(|v| v as u64),
                10_000,
                1,
            ) as usize,
            reload_interval_ms: self.number(
                ("server", "reload_interval_ms", "KPI_RELOAD_INTERVAL_MS"),
                raw.reload_interval_ms,
                1_000,
                50,
            ),
            request_timeout_ms: self.number(
                ("server", "request_timeout_ms", "KPI_REQUEST_TIMEOUT_MS"),
                raw.request_timeout_ms,
                300_000,
                100,
            ),
            refresh_interval_ms: 2_000,
            max_concurrent_builds: self.number(
                (
                    "server",
                    "max_concurrent_builds",
                    "KPI_MAX_CONCURRENT_BUILDS",
                ),
                raw.max_concurrent_builds,
                std::thread::available_parallelism().map_or(2, |n| n.get() as u64),
                1,
            ) as usize,
            schedule_interval_ms: self.number(
                ("server", "schedule_interval_ms", "KPI_SCHEDULE_INTERVAL_MS"),
                raw.schedule_interval_ms,
                30_000,
                100,
            ),
            api_token: self
                .pick(None, &["KPI_API_TOKEN"], raw.api_token.as_ref())
                .0
                .map(Secret::new),
            page_access: self.page_access(raw, addr),
            signing_key: self
                .pick(None, &["KPI_SIGNING_KEY"], raw.signing_key.as_ref())
                .0
                .map(Secret::new),
            signing_keys_previous: raw
                .signing_keys_previous
                .iter()
                .cloned()
                .map(Secret::new)
                .collect(),
        }
    }

    /// `open` or `signed`; by default open on a loopback address only.
    fn page_access(&mut self, raw: &RawServer, addr: SocketAddr) -> PageAccess {
        let (text, origin) = self.pick(None, &["KPI_PAGE_ACCESS"], raw.page_access.as_ref());
        match text.as_deref() {
            None if addr.ip().is_loopback() => PageAccess::Open,
            None => PageAccess::Signed,
            Some("open") => PageAccess::Open,
            Some("signed") => PageAccess::Signed,
            Some(other) => {
                self.problem(
                    "server",
                    "page_access",
                    origin,
                    format!("`{other}` is not a page access mode; use open or signed"),
                );
                PageAccess::Signed
            }
        }
    }

    fn attribution(&mut self, raw: RawAttribution) -> AttributionConfig {
        let (model, model_env) = self.pick(None, &["KPI_ATTRIBUTION_MODEL"], raw.model.as_ref());
        let (lookback, lookback_env) =
            self.pick(None, &["KPI_ATTRIBUTION_LOOKBACK"], raw.lookback.as_ref());
        let half_life = attribution::parse_half_life(raw.half_life.as_deref().unwrap_or("7d"))
            .unwrap_or_else(|message| {
                self.problem("attribution", "half_life", None, message);
                chrono::Duration::days(7)
            });
        let model = model.unwrap_or_else(|| "linear".to_string());
        let lookback = lookback.unwrap_or_else(|| "30d".to_string());
        let default = Settings::parse(&model, &lookback, half_life).unwrap_or_else(|message| {
            let (key, origin) = if attribution::parse_duration(&lookback).is_err() {
                ("lookback", lookback_env)
            } else {
                ("model", model_env)
            };
            self.problem("attribution", key, origin, message);
            Settings {
                model: Model::Linear,
                lookback: chrono::Duration::days(30),
            }
        });
        AttributionConfig {
            touches: raw
                .touches
                .unwrap_or_else(|| "reporting.touches".to_string())
                .to_ascii_lowercase(),
            conversions: raw
                .conversions
                .unwrap_or_else(|| "reporting.conversions".to_string())
                .to_ascii_lowercase(),
            default,
            half_life,
        }
    }

    fn snapshots_root(&mut self, project_dir: &Path, file: Option<&String>) -> DataRoot {
        let (text, origin) = self.pick(None, &["KPI_SNAPSHOTS"], file);
        parse_data_root(project_dir, text.as_deref().unwrap_or("./.kpi/snapshots")).unwrap_or_else(
            |message| {
                self.problem("snapshots", "root", origin, message);
                DataRoot::Local(project_dir.join(".kpi/snapshots"))
            },
        )
    }

    fn alerts(&mut self, project_dir: &Path, raw: &RawAlerts) -> AlertsConfig {
        let (text, origin) = self.pick(None, &["KPI_ALERT_LOG"], raw.log.as_ref());
        let log = parse_data_root(project_dir, text.as_deref().unwrap_or("./.kpi/alerts"))
            .unwrap_or_else(|message| {
                self.problem("alerts", "log", origin, message);
                DataRoot::Local(project_dir.join(".kpi/alerts"))
            });
        let (key, _) = self.pick(None, &["KPI_ALERT_SIGNING_KEY"], raw.signing_key.as_ref());
        AlertsConfig {
            log,
            signing_key: key.filter(|k| !k.is_empty()).map(Secret::new),
            retries: raw.retries.unwrap_or(3),
        }
    }

    fn rollups(&mut self, project_dir: &Path, raw: &RawRollups) -> RollupsConfig {
        let (text, origin) = self.pick(None, &["KPI_ROLLUPS"], raw.root.as_ref());
        let root = parse_data_root(project_dir, text.as_deref().unwrap_or("./.kpi/rollups"))
            .unwrap_or_else(|message| {
                self.problem("rollups", "root", origin, message);
                DataRoot::Local(project_dir.join(".kpi/rollups"))
            });
        let enabled = self.flag(
            ("rollups", "enabled", "KPI_ROLLUPS_ENABLED"),
            raw.enabled,
            true,
        );
        let background = self.flag(
            ("rollups", "background", "KPI_ROLLUPS_BACKGROUND"),
            raw.background,
            true,
        );
        let run_bytes = self.number(
            ("rollups", "run_kib", "KPI_ROLLUPS_RUN_KIB"),
            raw.run_kib.map(|v| v as u64),
            16 * 1024,
            1,
        ) * 1024;
        RollupsConfig {
            root,
            enabled,
            background,
            run_bytes,
        }
    }

    fn email(&mut self, project_dir: &Path, raw: &RawEmail) -> EmailConfig {
        let (tls_text, tls_env) = self.pick(None, &["KPI_SMTP_TLS"], raw.tls.as_ref());
        let tls = match tls_text.as_deref().unwrap_or("starttls") {
            "none" => SmtpTls::None,
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            other => {
                self.problem(
                    "email",
                    "tls",
                    tls_env,
                    format!(
                        "`{other}` is not a TLS mode; use none (a local relay), starttls or tls"
                    ),
                );
                SmtpTls::StartTls
            }
        };
        let (port_text, port_env) = self.pick(
            None,
            &["KPI_SMTP_PORT"],
            raw.smtp_port.map(|p| p.to_string()).as_ref(),
        );
        let default_port = match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        };
        let smtp_port = match port_text.map(|p| p.parse::<u16>()) {
            None => default_port,
            Some(Ok(port)) => port,
            Some(Err(_)) => {
                self.problem(
                    "email",
                    "smtp_port",
                    port_env,
                    "not a port number".to_string(),
                );
                default_port
            }
        };
        let link_lifetime = self.link_lifetime(raw);
        let (log_text, log_origin) = self.pick(None, &["KPI_SEND_LOG"], raw.send_log.as_ref());
        let send_log = parse_data_root(project_dir, log_text.as_deref().unwrap_or("./.kpi/sends"))
            .unwrap_or_else(|message| {
                self.problem("email", "send_log", log_origin, message);
                DataRoot::Local(project_dir.join(".kpi/sends"))
            });
        let value = |name: &'static str, file: Option<&String>| self.pick(None, &[name], file).0;
        EmailConfig {
            from: value("KPI_EMAIL_FROM", raw.from.as_ref())
                .unwrap_or_else(|| "kpi reports <kpi@localhost>".to_string()),
            smtp_host: value("KPI_SMTP_HOST", raw.smtp_host.as_ref())
                .unwrap_or_else(|| "127.0.0.1".to_string()),
            smtp_port,
            tls,
            ca_file: value("KPI_SMTP_CA_FILE", raw.ca_file.as_ref()).map(|p| project_dir.join(p)),
            username: value("KPI_SMTP_USERNAME", raw.username.as_ref()),
            password: value("KPI_SMTP_PASSWORD", raw.password.as_ref()).map(Secret::new),
            link_lifetime,
            public_url: value("KPI_PUBLIC_URL", raw.public_url.as_ref())
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
                .trim_end_matches('/')
                .to_string(),
            retries: raw.retries.unwrap_or(3),
            send_log,
        }
    }

    fn link_lifetime(&mut self, raw: &RawEmail) -> chrono::Duration {
        let text = raw.link_lifetime.as_deref().unwrap_or("30d");
        match attribution::parse_duration(text) {
            Ok(lifetime) if lifetime > chrono::Duration::zero() => lifetime,
            Ok(_) => {
                self.problem(
                    "email",
                    "link_lifetime",
                    None,
                    "must be longer than zero".into(),
                );
                chrono::Duration::days(30)
            }
            Err(message) => {
                self.problem("email", "link_lifetime", None, message);
                chrono::Duration::days(30)
            }
        }
    }

    fn sources(&mut self, raw: BTreeMap<String, RawSource>) -> BTreeMap<String, Source> {
        let mut sources = BTreeMap::new();
        for (name, raw_source) in raw {
            let section = format!("sources.{name}");
            if !is_identifier(&name) {
                self.problem(&section, "kind", None, format!(
                    "source name `{name}` must be lowercase letters, digits and `_`, starting with a letter, because it is the SQL schema of its tables"
                ));
                continue;
            }
            let ready_text = raw_source.ready_by.unwrap_or_else(|| "06:00".to_string());
            let ready_by = NaiveTime::parse_from_str(&ready_text, "%H:%M").unwrap_or_else(|_| {
                self.problem(
                    &section,
                    "ready_by",
                    None,
                    format!("`{ready_text}` is not a time; use HH:MM such as 06:00"),
                );
                NaiveTime::MIN
            });
            sources.insert(
                name.clone(),
                Source {
                    kind: raw_source.kind.unwrap_or_else(|| name.clone()),
                    owner: raw_source.owner.unwrap_or_else(|| "unassigned".to_string()),
                    description: raw_source.description.unwrap_or_default(),
                    lag_days: raw_source.lag_days.unwrap_or(1),
                    ready_by,
                    name,
                },
            );
        }
        sources
    }
}
