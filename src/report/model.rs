//! The report model: plain data that every renderer (page, email, JSON, CSV, snapshot) reads.
//! Built by [`super::Context::build`]; holds no engine handle and renders nothing.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::defs::{ChartType, Good, Unit};
use crate::metrics::{AttributionUsed, ComparisonValue, Maturity};

/// One report: everything its page shows.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Dashboard name.
    pub dashboard: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Audience.
    pub audience: String,
    /// Week label (`2026-W47`).
    pub week: String,
    /// The week before (for the page's link).
    #[serde(default)]
    pub previous_week: Option<String>,
    /// The week after, when it has started (for the page's link).
    #[serde(default)]
    pub next_week: Option<String>,
    /// First day of the week.
    pub start: NaiveDate,
    /// Last day of the week.
    pub end: NaiveDate,
    /// Reporting time zone.
    pub time_zone: String,
    /// Attribution model and lookback of the attributed numbers.
    pub attribution: AttributionUsed,
    /// Definitions version (hash of every definition file).
    pub definitions_version: String,
    /// Whether every source's data for the week is due (the week is over and each source's
    /// lag and ready time have passed).
    pub complete: bool,
    /// Warnings shown at the top: incomplete week, stale sources.
    pub banners: Vec<String>,
    /// Freshness per source.
    pub freshness: Vec<Freshness>,
    /// Generated sentences.
    pub summary: Vec<Sentence>,
    /// Headline tiles.
    pub primary: Vec<Tile>,
    /// Supporting tiles by section.
    pub sections: Vec<TileSection>,
    /// Charts.
    pub charts: Vec<ChartData>,
    /// The funnel (from the first funnel chart), with step ratios.
    pub funnel: Vec<FunnelStep>,
    /// Breakdown table.
    pub breakdown: Option<BreakdownTable>,
    /// One metric under every model.
    pub attribution_comparison: Option<ModelComparison>,
    /// Data health.
    pub health: Health,
    /// Source of truth of every KPI.
    pub footnotes: Vec<Footnote>,
}

/// Freshness of one source.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Freshness {
    /// Source name.
    pub source: String,
    /// Owner.
    pub owner: String,
    /// Latest day with data (local): over the landed columns the report's metrics place rows
    /// in time by (a view's time column is traced to the landed column it copies).
    pub latest: Option<NaiveDate>,
    /// Whether the data reaches the last day of the week.
    pub covers_week: bool,
    /// When the week's data of this source is due (local time).
    pub due: String,
}

/// A generated sentence of the summary.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Sentence {
    /// Which list of the summary it belongs to.
    pub kind: SentenceKind,
    /// The text.
    pub text: String,
    /// The KPI it is about (the sentence links to its tile).
    pub metric: Option<String>,
}

/// The three lists of a report's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentenceKind {
    /// What a headline KPI did.
    Changed,
    /// Good news beyond the thresholds.
    Improved,
    /// Something a reader should look into.
    FollowUp,
}

/// Where a tile's value stands against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// At or beyond the target in the good direction.
    Ahead,
    /// Within the behind-target threshold.
    OnTrack,
    /// Short of the threshold.
    Behind,
}

/// Why a tile has no value. Written as its text in JSON, so stored snapshots keep reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Unavailable {
    /// The metric computed, but no row falls in the week.
    NoData,
    /// The metric could not be computed; the message says why.
    Failed(String),
}

impl Unavailable {
    const NO_DATA: &'static str = "no data for this week";
}

impl From<String> for Unavailable {
    fn from(text: String) -> Self {
        if text == Self::NO_DATA {
            Self::NoData
        } else {
            Self::Failed(text)
        }
    }
}

impl From<Unavailable> for String {
    fn from(reason: Unavailable) -> Self {
        reason.to_string()
    }
}

/// Written as its text, so the schema is a string.
impl JsonSchema for Unavailable {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Unavailable".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "why a tile has no value: `no data for this week`, or why it failed"
        })
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoData => f.write_str(Self::NO_DATA),
            Self::Failed(message) => f.write_str(message),
        }
    }
}

/// One KPI tile.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Tile {
    /// Metric name.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
    /// Good direction.
    pub good: Good,
    /// Value in the week.
    pub value: Option<f64>,
    /// Comparisons by name.
    pub comparisons: BTreeMap<String, ComparisonValue>,
    /// Target in force.
    pub target: Option<f64>,
    /// Where the value stands against the target.
    pub target_status: Option<TargetStatus>,
    /// Weekly values for the sparkline, oldest first.
    pub sparkline: Vec<(String, Option<f64>)>,
    /// Why there is no value, when there is none.
    pub unavailable: Option<Unavailable>,
    /// Sources of truth.
    pub sources: Vec<String>,
    /// Attribution used, for attributed KPIs.
    pub attribution: Option<AttributionUsed>,
    /// Definition versions (of the metric or a part) first served inside the tile's weeks:
    /// values on either side of such a change were computed by different definitions.
    #[serde(default)]
    pub definition_changes: Vec<String>,
    /// Currency code of a currency KPI (`USD`).
    #[serde(default)]
    pub currency: Option<String>,
    /// Whether the week's value is a conversion cohort still maturing (compared with nothing,
    /// never judged in the narrative or by an alert).
    #[serde(default)]
    pub maturing: bool,
    /// How far the week's maturing cohort has been observed.
    #[serde(default)]
    pub maturity: Option<Maturity>,
    /// Sparkline weeks whose cohorts are still maturing.
    #[serde(default)]
    pub maturing_weeks: Vec<String>,
    /// What moved the value against the week before, by the report's breakdown dimension
    /// (filled for the KPIs "What changed" ranks, when the metric adds up across values).
    #[serde(default)]
    pub drivers: Vec<Driver>,
}

/// One dimension value's part in a KPI's change against the week before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Driver {
    /// Dimension.
    pub by: String,
    /// Dimension value (`(none)` for rows without one).
    pub value: String,
    /// Change of this value's contribution (`this week - week before`).
    pub change: f64,
    /// Its share of the sum of all values' changes (same sign as the total change: positive).
    pub share: f64,
}

/// Tiles under a heading.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TileSection {
    /// Heading.
    pub title: String,
    /// Tiles.
    pub tiles: Vec<Tile>,
}

/// A chart's data.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ChartData {
    /// URL-safe name.
    pub name: String,
    /// Heading.
    pub title: String,
    /// What the chart draws.
    pub kind: ChartType,
    /// Unit of the values (funnels: per point).
    pub unit: Unit,
    /// Dimension of a breakdown chart.
    pub by: Option<String>,
    /// Points in drawing order.
    pub points: Vec<ChartPoint>,
}

impl ChartData {
    /// The legend text of the values.
    pub fn unit_label(&self) -> String {
        self.title.clone()
    }
}

/// One point of a chart.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ChartPoint {
    /// Axis label (a week, a dimension value, a step).
    pub label: String,
    /// Value.
    pub value: Option<f64>,
    /// Target (trend charts).
    pub target: Option<f64>,
    /// Metric the value is of.
    pub metric: String,
    /// Period the value is of.
    pub period: String,
    /// Unit of the value.
    pub unit: Unit,
    /// Extra text (funnel step ratio).
    pub note: Option<String>,
    /// Attribution used, for attributed metrics.
    pub attribution: Option<AttributionUsed>,
}

/// One funnel step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FunnelStep {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
    /// Currency code of money.
    #[serde(default)]
    pub currency: Option<String>,
    /// Where the step is counted: its sources of truth (steps in different scopes, such as ad
    /// clicks and all sessions, are not a conversion of one another).
    #[serde(default)]
    pub scope: Vec<String>,
    /// Value in the week.
    pub value: Option<f64>,
    /// This step's value divided by the previous step's.
    pub ratio_to_previous: Option<f64>,
    /// The ratio in words.
    pub rate: Option<String>,
}

/// Metrics side by side by a dimension.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BreakdownTable {
    /// Dimension.
    pub by: String,
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows: dimension value and one value per column.
    pub rows: Vec<(String, Vec<Option<f64>>)>,
    /// Per-column problem (an unavailable metric).
    pub errors: Vec<Option<String>>,
}

/// A column of the breakdown table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Column {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
    /// Currency code of money.
    #[serde(default)]
    pub currency: Option<String>,
    /// Attribution used, for attributed metrics.
    pub attribution: Option<AttributionUsed>,
}

/// One metric by channel under every model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ModelComparison {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
    /// Currency code of money.
    #[serde(default)]
    pub currency: Option<String>,
    /// Lookback.
    pub lookback: String,
    /// Models (columns).
    pub models: Vec<String>,
    /// Channel and one value per model.
    pub rows: Vec<(String, Vec<Option<f64>>)>,
    /// Column totals.
    pub totals: Vec<Option<f64>>,
}

/// The data-health section.
#[derive(Debug, Clone, Serialize, Deserialize, Default, JsonSchema)]
pub struct Health {
    /// Landed rows and exact duplicates (removed by the views) per table.
    pub duplicates: Vec<DuplicateCount>,
    /// Reconciliations.
    pub reconcile: Vec<ReconcileTable>,
    /// Problems worth a follow-up.
    pub findings: Vec<String>,
    /// Tracking conventions (`[conventions]`): rows of the week that break each rule.
    #[serde(default)]
    pub conventions: Vec<ConventionCount>,
}

/// Rows of one table (in the report's week) that break one tracking convention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConventionCount {
    /// The rule in words (`utm_medium is one of cpc, email`).
    pub rule: String,
    /// Landed table judged.
    pub table: String,
    /// Rows that break the rule.
    pub rows: Option<i64>,
    /// What a row carries (`sessions`, `spend`).
    pub carries: String,
    /// How much of it the breaking rows carry (distinct sessions, spend).
    pub carried: Option<f64>,
    /// The most frequent offending values and their rows (`(missing)` for a required field).
    pub top: Vec<(String, i64)>,
    /// Why the rule could not be checked.
    pub error: Option<String>,
}

/// Rows of one landed table and how many are exact duplicates.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DuplicateCount {
    /// Table.
    pub table: String,
    /// Landed rows (all time).
    pub rows: Option<i64>,
    /// Rows that repeat another row exactly (removed by the reporting views).
    pub duplicates: Option<i64>,
    /// Why the count is missing.
    pub error: Option<String>,
}

/// Two metrics compared by a dimension.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileTable {
    /// In words.
    pub label: String,
    /// Reference metric.
    pub left: String,
    /// Compared metric.
    pub right: String,
    /// Dimension.
    pub by: String,
    /// One row per dimension value of the reference metric.
    pub rows: Vec<ReconcileRow>,
    /// Gap share above which it is a finding.
    pub tolerance: f64,
}

/// Dimension value, left, right and the gap share (`right / left - 1`).
pub type ReconcileRow = (String, Option<f64>, Option<f64>, Option<f64>);

/// Where a KPI comes from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Footnote {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Sources of truth.
    pub sources: Vec<String>,
    /// Owner.
    pub owner: String,
    /// Definition hash.
    pub hash: String,
    /// Meaning.
    pub description: String,
}
