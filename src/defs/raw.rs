//! Definition files exactly as written: plain structs, unknown keys are errors.
//!
//! Nothing here validates meaning; [`super::resolve`] does that for the whole set at once.
//! Fields that a later error must point at are `Spanned`, so diagnostics carry their line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A `metrics/*.toml` file: any number of `[[metric]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricFile {
    /// The metrics declared in the file.
    #[serde(default)]
    pub metric: Vec<RawMetric>,
}

/// One metric as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    /// Unique name, used in URLs and SQL-free references (`spend`).
    pub name: Spanned<String>,
    /// Short human label (`Ad spend`).
    pub label: Option<String>,
    /// What the number means, in a sentence or two.
    pub description: Option<String>,
    /// The configured source that is the source of truth for this number (required for
    /// simple and conversion metrics; composite metrics take their parts' sources).
    pub source: Option<Spanned<String>>,
    /// Who answers questions about the metric.
    pub owner: Option<String>,
    /// `primary` or `supporting`.
    pub tier: Option<Spanned<String>>,
    /// `count`, `currency`, `percent`, `ratio` or `duration`.
    pub unit: Option<Spanned<String>>,
    /// Currency code for `currency` metrics (`USD`).
    pub currency: Option<String>,
    /// `up`, `down` or `neutral`: which direction is good.
    pub good: Option<Spanned<String>>,
    /// `simple` (default), `ratio`, `derived`, `cumulative` or `conversion`.
    pub kind: Option<Spanned<String>>,
    /// Aggregate SQL expression (simple metrics), such as `SUM(spend)`.
    pub measure: Option<Spanned<String>>,
    /// Table or view read (simple metrics): `ads.campaign_daily` or `reporting.clean_x`.
    pub table: Option<Spanned<String>>,
    /// Date or timestamp column that places a row in a period.
    pub time_column: Option<Spanned<String>>,
    /// Optional SQL predicate applied before aggregating.
    pub filter: Option<Spanned<String>>,
    /// Columns the metric may be sliced by.
    #[serde(default)]
    pub dimensions: Vec<Spanned<String>>,
    /// Numerator metric (ratio metrics).
    pub numerator: Option<Spanned<String>>,
    /// Denominator metric (ratio metrics).
    pub denominator: Option<Spanned<String>>,
    /// Arithmetic over other metrics (derived metrics), such as `spend / mqls`.
    pub expression: Option<Spanned<String>>,
    /// The metric accumulated (cumulative metrics).
    pub of: Option<Spanned<String>>,
    /// `running`, or the to-date window: `week`, `month`, `quarter`, `year` (cumulative).
    pub window: Option<Spanned<String>>,
    /// Column identifying an entity in both steps (conversion metrics), such as `contact_id`.
    pub entity: Option<Spanned<String>>,
    /// The step entities start from; they are counted in the period they first reach it.
    pub from_step: Option<Spanned<RawStep>>,
    /// The step they should reach.
    pub to_step: Option<Spanned<RawStep>>,
    /// Days after reaching `from_step` within which `to_step` counts (inclusive).
    pub within_days: Option<u32>,
    /// Weekly targets keyed by the first week they apply to (`"2026-W01" = 50000`).
    #[serde(default)]
    pub targets: BTreeMap<String, f64>,
}

/// One step of a conversion metric.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Table or view holding the step's rows.
    pub table: String,
    /// When an entity reached the step.
    pub time_column: String,
    /// Which rows are the step.
    pub filter: Option<String>,
}

/// A `dashboards/*.toml` file: one weekly report template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDashboard {
    /// Report title.
    pub title: String,
    /// One-paragraph description.
    pub description: Option<String>,
    /// Who reads it.
    pub audience: Option<String>,
    /// Headline KPIs, in order.
    #[serde(default)]
    pub primary: Vec<Spanned<String>>,
    /// Supporting KPIs, in order.
    #[serde(default)]
    pub supporting: Vec<Spanned<String>>,
    /// Model and lookback of the report's attributed numbers (default: kpi.toml).
    pub attribution: Option<RawAttributionChoice>,
    /// Comparisons on every tile: `previous`, `year_ago`, `trailing_4`.
    pub compare: Option<Vec<Spanned<String>>>,
    /// Weeks in sparklines and trend charts (default 13).
    pub trend_weeks: Option<Spanned<u32>>,
    /// Groups of supporting KPIs, each with a title.
    #[serde(default)]
    pub section: Vec<RawSection>,
    /// Charts, in page order.
    #[serde(default)]
    pub chart: Vec<RawChart>,
    /// The breakdown table: metrics side by side by one dimension.
    pub breakdown: Option<RawBreakdown>,
    /// The metric shown under every attribution model side by side.
    pub attribution_comparison: Option<Spanned<String>>,
    /// Data-health reconciliations: two metrics that should roughly agree, by one dimension.
    #[serde(default)]
    pub reconcile: Vec<RawReconcile>,
    /// Thresholds that drive the summary.
    pub thresholds: Option<RawThresholds>,
    /// Who gets the email, and when.
    pub email: Option<RawDashboardEmail>,
    /// Alerts on the dashboard's KPIs.
    #[serde(default)]
    pub alert: Vec<RawAlert>,
}

/// `[[alert]]` of a dashboard: a metric, exactly one condition, and where to deliver.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    /// Unique name across the project (used by `kpi alerts snooze`).
    pub name: Spanned<String>,
    /// Metric judged.
    pub metric: Spanned<String>,
    /// Dimension = value filters (`{ channel = "paid_search" }`).
    #[serde(default)]
    pub filter: BTreeMap<String, Spanned<String>>,
    /// Fires when the value is below this.
    pub below: Option<f64>,
    /// Fires when the value is above this.
    pub above: Option<f64>,
    /// Fires when the relative change against `against` is below this (`-0.2`).
    pub change_below: Option<f64>,
    /// Fires when the relative change against `against` is above this.
    pub change_above: Option<f64>,
    /// Comparison of a change condition: `previous` (default), `year_ago`, `trailing_4`.
    pub against: Option<Spanned<String>>,
    /// A change condition is not judged when the base is below this (default 0).
    pub min_baseline: Option<f64>,
    /// Fires when the value is behind this share of the week's target (`0.9`).
    pub behind_target: Option<f64>,
    /// Fires when the week has no value or a source of the metric is stale for it.
    pub no_data: Option<bool>,
    /// Webhook URL (a Slack incoming-webhook URL works as it is).
    pub webhook: Option<Spanned<String>>,
    /// Email recipients.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
}

/// `[email]` of a dashboard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDashboardEmail {
    /// Recipients.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// `monday 08:00` (reporting time zone): send the latest complete week then.
    pub schedule: Option<Spanned<String>>,
}

/// `attribution = { model = "markov", lookback = "30d" }` of a dashboard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttributionChoice {
    /// Model name.
    pub model: Option<Spanned<String>>,
    /// Lookback such as `30d`.
    pub lookback: Option<Spanned<String>>,
}

/// A titled group of KPI tiles.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    /// Heading.
    pub title: String,
    /// Metrics, in order.
    pub metrics: Vec<Spanned<String>>,
}

/// One chart of a dashboard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChart {
    /// URL-safe name (`pipeline-trend`), used in `/charts/{dashboard}/{week}/{name}.png`.
    pub name: Spanned<String>,
    /// `trend`, `breakdown` or `funnel`.
    pub kind: Spanned<String>,
    /// Heading (default: from the metric).
    pub title: Option<String>,
    /// The metric (trend, breakdown).
    pub metric: Option<Spanned<String>>,
    /// The steps (funnel).
    #[serde(default)]
    pub metrics: Vec<Spanned<String>>,
    /// The dimension (breakdown).
    pub by: Option<Spanned<String>>,
}

/// The breakdown table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreakdown {
    /// The dimension every metric is sliced by.
    pub by: Spanned<String>,
    /// The metrics, as columns.
    pub metrics: Vec<Spanned<String>>,
}

/// Two metrics that should agree, compared by one dimension (ad clicks against sessions).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReconcile {
    /// What is compared, in words.
    pub label: String,
    /// The reference metric (`clicks`).
    pub left: Spanned<String>,
    /// The metric compared with it (`sessions`).
    pub right: Spanned<String>,
    /// The dimension both have (`platform`).
    pub by: Spanned<String>,
    /// A gap above this share is a finding (default 0.2).
    pub tolerance: Option<f64>,
}

/// Thresholds of the generated summary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    /// A week-over-week change at least this large (as a share, 0.1 = 10 %) is worth a sentence.
    pub change: Option<f64>,
    /// Below this share of target is behind target (default 0.95).
    pub behind_target: Option<f64>,
}
