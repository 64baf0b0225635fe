//! The raw shape of `kpi.toml`, exactly as written: unknown keys are errors. Nothing here is
//! validated; [`super::resolve`] turns it into a [`super::Config`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The raw file, exactly as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) data: RawData,
    #[serde(default)]
    pub(super) time: RawTime,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) engine: RawEngine,
    #[serde(default)]
    pub(super) attribution: RawAttribution,
    #[serde(default)]
    pub(super) snapshots: RawSnapshots,
    #[serde(default)]
    pub(super) email: RawEmail,
    #[serde(default)]
    pub(super) rollups: RawRollups,
    #[serde(default)]
    pub(super) sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    pub(super) conventions: super::conventions::RawConventions,
    #[serde(default)]
    pub(super) alerts: RawAlerts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) log: Option<String>,
    pub(super) signing_key: Option<String>,
    pub(super) retries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSnapshots {
    pub(super) root: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRollups {
    pub(super) root: Option<String>,
    pub(super) enabled: Option<bool>,
    pub(super) background: Option<bool>,
    pub(super) run_kib: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    pub(super) from: Option<String>,
    pub(super) smtp_host: Option<String>,
    pub(super) smtp_port: Option<u16>,
    pub(super) tls: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) retries: Option<u32>,
    pub(super) send_log: Option<String>,
    pub(super) link_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttribution {
    pub(super) touches: Option<String>,
    pub(super) conversions: Option<String>,
    pub(super) model: Option<String>,
    pub(super) lookback: Option<String>,
    pub(super) half_life: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawData {
    pub(super) root: Option<String>,
    pub(super) refresh_interval_ms: Option<u64>,
    #[serde(default)]
    pub(super) s3: RawS3,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawS3 {
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) access_key_id: Option<String>,
    pub(super) secret_access_key: Option<String>,
    pub(super) allow_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTime {
    pub(super) time_zone: Option<String>,
    pub(super) week_start: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) addr: Option<String>,
    pub(super) sql_timeout_ms: Option<u64>,
    pub(super) sql_row_limit: Option<usize>,
    pub(super) reload_interval_ms: Option<u64>,
    pub(super) schedule_interval_ms: Option<u64>,
    pub(super) request_timeout_ms: Option<u64>,
    pub(super) max_concurrent_builds: Option<u64>,
    pub(super) api_token: Option<String>,
    pub(super) page_access: Option<String>,
    pub(super) signing_key: Option<String>,
    #[serde(default)]
    pub(super) signing_keys_previous: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    pub(super) memory_limit_mb: Option<usize>,
    pub(super) target_partitions: Option<usize>,
    pub(super) cluster: Option<String>,
    pub(super) cluster_job_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) kind: Option<String>,
    pub(super) owner: Option<String>,
    pub(super) description: Option<String>,
    pub(super) lag_days: Option<u32>,
    pub(super) ready_by: Option<String>,
}
