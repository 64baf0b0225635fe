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
    /// The configured source that is the source of truth for this number.
    pub source: Spanned<String>,
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
    /// `simple` (default) or `ratio`.
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
    /// Weekly targets keyed by the first week they apply to (`"2026-W01" = 50000`).
    #[serde(default)]
    pub targets: BTreeMap<String, f64>,
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
}
