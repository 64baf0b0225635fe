//! Weekly reports: every number of one dashboard for one week, computed once, then rendered
//! as a page (`html.rs`), charts (`charts.rs`), JSON and CSV.
//!
//! A [`Report`] is plain data: the pages, `kpi report` and (later) snapshots and email all
//! render the same value. A KPI that cannot be computed (its table is unreadable, its source
//! has no rows for the week) becomes an unavailable tile with the reason; the rest of the
//! report is still built.

pub mod charts;
pub mod html;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attribution::{Model, Settings};
use crate::config::Config;
use crate::defs::{ChartKind, ChartType, Dashboard, Good, Metric, Registry, Unit};
use crate::engine::{Engine, QueryLimits};
use crate::error::{Error, Result};
use crate::metrics::{self, AttributionUsed, ComparisonValue, MetricService, SeriesRequest};
use crate::time::{Calendar, Grain, Period};

/// One report: everything its page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Freshness {
    /// Source name.
    pub source: String,
    /// Owner.
    pub owner: String,
    /// Latest day with data (local), over the tables the report reads.
    pub latest: Option<NaiveDate>,
    /// Whether the data reaches the last day of the week.
    pub covers_week: bool,
    /// When the week's data of this source is due (local time).
    pub due: String,
}

/// A generated sentence of the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sentence {
    /// Which list of the summary it belongs to.
    pub kind: SentenceKind,
    /// The text.
    pub text: String,
    /// The KPI it is about (the sentence links to its tile).
    pub metric: Option<String>,
}

/// The three lists of a report's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoData => f.write_str(Self::NO_DATA),
            Self::Failed(message) => f.write_str(message),
        }
    }
}

/// One KPI tile.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

/// Tiles under a heading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TileSection {
    /// Heading.
    pub title: String,
    /// Tiles.
    pub tiles: Vec<Tile>,
}

/// A chart's data.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunnelStep {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
    /// Value in the week.
    pub value: Option<f64>,
    /// This step's value divided by the previous step's.
    pub ratio_to_previous: Option<f64>,
    /// The ratio in words.
    pub rate: Option<String>,
}

/// Metrics side by side by a dimension.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
    /// Attribution used, for attributed metrics.
    pub attribution: Option<AttributionUsed>,
}

/// One metric by channel under every model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelComparison {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
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
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Health {
    /// Landed rows and exact duplicates (removed by the views) per table.
    pub duplicates: Vec<DuplicateCount>,
    /// Reconciliations.
    pub reconcile: Vec<ReconcileTable>,
    /// Problems worth a follow-up.
    pub findings: Vec<String>,
}

/// Rows of one landed table and how many are exact duplicates.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Landed and duplicate rows by (table, data version).
type DuplicateCounts = std::sync::Mutex<BTreeMap<(String, String), (i64, i64)>>;

/// Where a KPI comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// What a report needs besides the dashboard and week.
pub struct Context<'a> {
    /// Definitions.
    pub registry: &'a Registry,
    /// Engine.
    pub engine: &'a Engine,
    /// Configuration.
    pub config: &'a Config,
    /// The time "now" is (decides completeness).
    pub now: DateTime<Utc>,
}

impl Context<'_> {
    fn calendar(&self) -> Calendar {
        Calendar::new(self.config.time_zone, self.config.week_start)
    }

    /// Returns the dashboard or a not-found error naming the ones that exist.
    pub fn dashboard(&self, name: &str) -> Result<&Dashboard> {
        self.registry.dashboards.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .registry
                .dashboards
                .keys()
                .map(String::as_str)
                .collect();
            Error::not_found(
                "unknown_dashboard",
                format!(
                    "no dashboard named `{name}`; dashboards: {}",
                    known.join(", ")
                ),
            )
        })
    }

    /// Parses a week label (`2026-W47`).
    pub fn week(&self, label: &str) -> Result<Period> {
        let period = self
            .calendar()
            .parse_as(label, Grain::Week, false)
            .map_err(|message| Error::input("bad_week", message))?;
        if period.grain() != Grain::Week {
            return Err(Error::input(
                "bad_week",
                format!("`{label}` is not a week; use 2026-W47"),
            ));
        }
        Ok(period)
    }

    /// The dashboard and the week asked for (default: its latest complete week).
    pub fn dashboard_week(&self, name: &str, week: Option<&str>) -> Result<(&Dashboard, Period)> {
        let dashboard = self.dashboard(name)?;
        let period = match week {
            Some(label) => self.week(label)?,
            None => self.latest_complete_week(dashboard),
        };
        Ok((dashboard, period))
    }

    /// The latest week that is complete for every source the dashboard reads.
    pub fn latest_complete_week(&self, dashboard: &Dashboard) -> Period {
        let calendar = self.calendar();
        let mut week = calendar.period_of_instant(self.now, Grain::Week);
        for _ in 0..8 {
            if self.complete(dashboard, week) {
                return week;
            }
            week = calendar.previous(week);
        }
        week
    }

    /// Every metric a dashboard shows, in page order, without repeats.
    pub fn metrics_of<'d>(&self, dashboard: &'d Dashboard) -> Vec<&'d str> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut add = |name: &'d str| {
            if seen.insert(name) {
                out.push(name);
            }
        };
        dashboard.primary.iter().for_each(|m| add(m));
        dashboard
            .sections
            .iter()
            .flat_map(|s| &s.metrics)
            .for_each(|m| add(m));
        for chart in &dashboard.charts {
            match &chart.kind {
                ChartKind::Trend { metric } | ChartKind::Breakdown { metric, .. } => add(metric),
                ChartKind::Funnel { metrics } => metrics.iter().for_each(|m| add(m)),
            }
        }
        if let Some(b) = &dashboard.breakdown {
            b.metrics.iter().for_each(|m| add(m));
        }
        if let Some(m) = &dashboard.attribution_comparison {
            add(m);
        }
        for r in &dashboard.reconcile {
            add(&r.left);
            add(&r.right);
        }
        out
    }

    /// The sources a dashboard's numbers come from.
    pub fn sources_of(&self, dashboard: &Dashboard) -> BTreeSet<String> {
        let mut sources = BTreeSet::new();
        for name in self.metrics_of(dashboard) {
            if let Some(metric) = self.registry.metrics.get(name) {
                sources.extend(metric.sources.iter().cloned());
                if metrics::reads_attribution(self.registry, metric) {
                    // Touches come from other sources: every configured source could matter.
                    sources.extend(self.config.sources.keys().cloned());
                }
            }
        }
        sources
    }

    /// When a source's data for `day` is due: `day + lag_days` at `ready_by`, local.
    fn due(&self, source: &str, day: NaiveDate) -> Option<DateTime<Utc>> {
        let source = self.config.sources.get(source)?;
        let local = (day + Duration::days(i64::from(source.lag_days))).and_time(source.ready_by);
        use chrono::TimeZone;
        self.config
            .time_zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether every source the dashboard reads has its data for the whole week due by now.
    pub fn complete(&self, dashboard: &Dashboard, week: Period) -> bool {
        self.sources_of(dashboard).iter().all(|source| {
            self.due(source, week.last_day())
                .is_some_and(|due| due <= self.now)
        })
    }

    /// A tag for everything a report depends on: definitions, the dashboard, the week, the
    /// attribution settings, whether the week is complete, and the data version of every
    /// table of the sources it reads. Costs one listing of the data root, no query.
    pub async fn etag(&self, dashboard: &Dashboard, week: Period) -> Result<String> {
        self.engine.refresh().await?;
        let sources = self.sources_of(dashboard);
        let versions = self.engine.data_versions().await;
        let mut hasher = Sha256::new();
        hasher.update(self.registry.version.as_bytes());
        hasher.update(dashboard.hash.as_bytes());
        hasher.update(self.calendar().label(week).as_bytes());
        hasher.update(format!("{:?}", dashboard.attribution).as_bytes());
        hasher.update([u8::from(self.complete(dashboard, week))]);
        for (table, version) in versions {
            let source = table.split('.').next().unwrap_or_default();
            if sources.contains(source) {
                hasher.update(table.as_bytes());
                hasher.update(version.as_bytes());
            }
        }
        Ok(format!(
            "\"{}\"",
            crate::digest::short_hex(&hasher.finalize(), 12)
        ))
    }

    /// Computes the report of `dashboard` for `week`.
    pub async fn build(&self, dashboard: &Dashboard, week: Period) -> Result<Report> {
        let calendar = self.calendar();
        let label = calendar.label(week);
        let settings = dashboard.attribution;
        let compare = dashboard.compare.clone();
        let service = MetricService::new(self.registry, self.engine, calendar);
        let mut first = week;
        for _ in 1..dashboard.trend_weeks {
            first = calendar.previous(first);
        }

        // Every tile's series: the trend weeks up to the report week, with comparisons.
        let mut tiles: BTreeMap<String, Tile> = BTreeMap::new();
        for name in self.metrics_of(dashboard) {
            let Some(metric) = self.registry.metrics.get(name) else {
                continue;
            };
            let attributed = metrics::reads_attribution(self.registry, metric);
            let request = SeriesRequest {
                metric: name.to_string(),
                from: first,
                to: week,
                by: Vec::new(),
                filters: Vec::new(),
                compare: compare.clone(),
                attribution: attributed.then_some(settings),
            };
            let tile = match service.series(&request).await {
                Ok(series) => tile_from(metric, &series, dashboard),
                Err(error) => unavailable_tile(metric, error.message),
            };
            tiles.insert(name.to_string(), tile);
        }
        // Mark tiles whose definition (or a part's) changed inside the weeks shown.
        let history = crate::defs::history::History::open(&self.config.project_dir);
        let (range_start, _) = calendar.instants(first);
        let (_, range_end) = calendar.instants(week);
        for (name, tile) in tiles.iter_mut() {
            let Some(metric) = self.registry.metrics.get(name) else {
                continue;
            };
            let mut names = vec![name.clone()];
            names.extend(metrics::parts(metric));
            for part in names {
                for version in history.for_metric(&part).into_iter().skip(1) {
                    if version.first_seen >= range_start && version.first_seen < range_end {
                        tile.definition_changes.push(format!(
                            "{part} changed to definition {} on {}",
                            version.hash,
                            version
                                .first_seen
                                .with_timezone(&self.config.time_zone)
                                .format("%Y-%m-%d")
                        ));
                    }
                }
            }
        }
        let tile = |name: &String| tiles.get(name).cloned();
        let primary: Vec<Tile> = dashboard.primary.iter().filter_map(tile).collect();
        let sections: Vec<TileSection> = dashboard
            .sections
            .iter()
            .map(|s| TileSection {
                title: s.title.clone(),
                tiles: s.metrics.iter().filter_map(tile).collect(),
            })
            .collect();

        // Charts.
        let mut charts = Vec::new();
        let mut funnel = Vec::new();
        for chart in &dashboard.charts {
            let data = match &chart.kind {
                ChartKind::Trend { metric } => {
                    let t = &tiles[metric];
                    let source = self.registry.metrics.get(metric);
                    ChartData {
                        name: chart.name.clone(),
                        title: chart.title.clone(),
                        kind: ChartType::Trend,
                        unit: t.unit,
                        by: None,
                        points: t
                            .sparkline
                            .iter()
                            .map(|(period, value)| ChartPoint {
                                label: period.clone(),
                                value: *value,
                                target: source.and_then(|m| metrics::target_for(m, period)),
                                metric: metric.clone(),
                                period: period.clone(),
                                unit: t.unit,
                                note: None,
                                attribution: t.attribution.clone(),
                            })
                            .collect(),
                    }
                }
                ChartKind::Breakdown { metric, by } => {
                    let unit = tiles[metric].unit;
                    let values = self
                        .by_dimension(&service, metric, by, week, settings)
                        .await
                        .unwrap_or_default();
                    let mut points: Vec<ChartPoint> = values
                        .into_iter()
                        .map(|(value_label, value)| ChartPoint {
                            label: value_label,
                            value,
                            target: None,
                            metric: metric.clone(),
                            period: label.clone(),
                            unit,
                            note: None,
                            attribution: tiles[metric].attribution.clone(),
                        })
                        .collect();
                    points.sort_by(|a, b| {
                        b.value
                            .unwrap_or(0.0)
                            .total_cmp(&a.value.unwrap_or(0.0))
                            .then(a.label.cmp(&b.label))
                    });
                    ChartData {
                        name: chart.name.clone(),
                        title: chart.title.clone(),
                        kind: ChartType::Breakdown,
                        unit,
                        by: Some(by.clone()),
                        points,
                    }
                }
                ChartKind::Funnel { metrics: steps } => {
                    let mut previous: Option<f64> = None;
                    let mut previous_unit: Option<Unit> = None;
                    let mut previous_label: Option<String> = None;
                    let mut points = Vec::new();
                    for step in steps {
                        let t = &tiles[step];
                        let ratio = match (previous, t.value) {
                            (Some(p), Some(v)) if p != 0.0 => Some(v / p),
                            _ => None,
                        };
                        if funnel.len() < steps.len() {
                            funnel.push(FunnelStep {
                                metric: step.clone(),
                                label: t.label.clone(),
                                unit: t.unit,
                                value: t.value,
                                ratio_to_previous: ratio,
                                rate: ratio.map(|r| {
                                    step_text(r, previous_unit, t.unit, previous_label.as_deref())
                                }),
                            });
                        }
                        points.push(ChartPoint {
                            label: t.label.clone(),
                            value: t.value,
                            target: None,
                            metric: step.clone(),
                            period: label.clone(),
                            unit: t.unit,
                            note: ratio.map(|r| {
                                step_text(r, previous_unit, t.unit, previous_label.as_deref())
                            }),
                            attribution: t.attribution.clone(),
                        });
                        previous = t.value;
                        previous_unit = Some(t.unit);
                        previous_label = Some(t.label.clone());
                    }
                    ChartData {
                        name: chart.name.clone(),
                        title: chart.title.clone(),
                        kind: ChartType::Funnel,
                        unit: Unit::Count,
                        by: None,
                        points,
                    }
                }
            };
            charts.push(data);
        }

        let breakdown = match &dashboard.breakdown {
            Some(b) => Some(self.breakdown(&service, b, week, settings).await),
            None => None,
        };
        let attribution_comparison = match &dashboard.attribution_comparison {
            Some(metric) => self
                .model_comparison(&service, metric, week, settings)
                .await
                .ok(),
            None => None,
        };

        // Freshness and completeness.
        let sources = self.sources_of(dashboard);
        let latest = self.latest_days(dashboard).await;
        let mut freshness = Vec::new();
        let mut banners = Vec::new();
        let complete = self.complete(dashboard, week);
        if !complete {
            banners.push(format!(
                "{label} is not complete yet: some sources' data for {} is not due until later. Numbers will change.",
                week.last_day()
            ));
        }
        // Freshness is known for the sources whose tables the report's metrics place in time
        // (a source reached only through the attribution touches has no such column here).
        for (source, latest_day) in &latest {
            let Some(config) = self.config.sources.get(source) else {
                continue;
            };
            let latest_day = *latest_day;
            let covers_week = latest_day.is_some_and(|d| d >= week.last_day());
            let due = self
                .due(source, week.last_day())
                .map(|d| {
                    d.with_timezone(&self.config.time_zone)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            if !covers_week {
                banners.push(format!(
                    "Source `{source}` has data up to {} only, before the end of {label}: its numbers are incomplete. Ask {}.",
                    latest_day.map(|d| d.to_string()).unwrap_or_else(|| "no date".into()),
                    config.owner
                ));
            }
            freshness.push(Freshness {
                source: source.clone(),
                owner: config.owner.clone(),
                latest: latest_day,
                covers_week,
                due,
            });
        }

        let health = self
            .health(&service, dashboard, &sources, week, settings)
            .await;
        let footnotes = self
            .metrics_of(dashboard)
            .iter()
            .filter_map(|name| self.registry.metrics.get(*name))
            .map(|m| Footnote {
                metric: m.name.clone(),
                label: m.label.clone(),
                sources: m.sources.clone(),
                owner: m.owner.clone(),
                hash: m.hash.clone(),
                description: m.description.clone(),
            })
            .collect();
        let mut report = Report {
            dashboard: dashboard.name.clone(),
            title: dashboard.title.clone(),
            description: dashboard.description.clone(),
            audience: dashboard.audience.clone(),
            week: label,
            start: week.start,
            end: week.last_day(),
            time_zone: self.config.time_zone.to_string(),
            attribution: AttributionUsed::from(settings),
            definitions_version: self.registry.version.clone(),
            complete,
            banners,
            freshness,
            summary: Vec::new(),
            primary,
            sections,
            charts,
            funnel,
            breakdown,
            attribution_comparison,
            health,
            footnotes,
        };
        report.summary = summarise(&report, dashboard);
        Ok(report)
    }

    async fn by_dimension(
        &self,
        service: &MetricService<'_>,
        metric: &str,
        by: &str,
        week: Period,
        settings: Settings,
    ) -> Result<Vec<(String, Option<f64>)>> {
        let attributed = self
            .registry
            .metrics
            .get(metric)
            .is_some_and(|m| metrics::reads_attribution(self.registry, m));
        let series = service
            .series(&SeriesRequest {
                metric: metric.to_string(),
                from: week,
                to: week,
                by: vec![by.to_string()],
                filters: Vec::new(),
                compare: Vec::new(),
                attribution: attributed.then_some(settings),
            })
            .await?;
        Ok(series
            .points
            .into_iter()
            .map(|p| {
                let value = p
                    .dimensions
                    .get(by)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "(none)".into());
                (value, p.value)
            })
            .collect())
    }

    async fn breakdown(
        &self,
        service: &MetricService<'_>,
        breakdown: &crate::defs::Breakdown,
        week: Period,
        settings: Settings,
    ) -> BreakdownTable {
        let mut columns = Vec::new();
        let mut values: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        let mut errors = Vec::new();
        let count = breakdown.metrics.len();
        for (index, name) in breakdown.metrics.iter().enumerate() {
            let Some(metric) = self.registry.metrics.get(name) else {
                continue;
            };
            columns.push(Column {
                metric: name.clone(),
                label: metric.label.clone(),
                unit: metric.unit,
                attribution: metrics::reads_attribution(self.registry, metric)
                    .then(|| AttributionUsed::from(settings)),
            });
            match self
                .by_dimension(service, name, &breakdown.by, week, settings)
                .await
            {
                Ok(rows) => {
                    errors.push(None);
                    for (value, v) in rows {
                        values.entry(value).or_insert_with(|| vec![None; count])[index] = v;
                    }
                }
                Err(error) => errors.push(Some(error.message)),
            }
        }
        BreakdownTable {
            by: breakdown.by.clone(),
            columns,
            rows: values.into_iter().collect(),
            errors,
        }
    }

    /// One attributed metric by channel under every model, at the lookback of `settings`.
    pub async fn model_comparison(
        &self,
        service: &MetricService<'_>,
        metric: &str,
        week: Period,
        settings: Settings,
    ) -> Result<ModelComparison> {
        let definition = self
            .registry
            .metrics
            .get(metric)
            .ok_or_else(|| Error::internal("comparison metric missing"))?;
        let half_life = match settings.model {
            Model::TimeDecay { half_life } => half_life,
            _ => self.config.attribution.half_life,
        };
        let models = Model::all(half_life);
        let mut rows: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        let mut totals = vec![None; models.len()];
        for (index, model) in models.iter().enumerate() {
            let series = service
                .series(&SeriesRequest {
                    metric: metric.to_string(),
                    from: week,
                    to: week,
                    by: vec!["channel".into()],
                    filters: Vec::new(),
                    compare: Vec::new(),
                    attribution: Some(settings.with_model(*model)),
                })
                .await?;
            for point in series.points {
                let channel = point
                    .dimensions
                    .get("channel")
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                rows.entry(channel)
                    .or_insert_with(|| vec![None; models.len()])[index] = point.value;
                if let Some(v) = point.value {
                    totals[index] = Some(totals[index].unwrap_or(0.0) + v);
                }
            }
        }
        Ok(ModelComparison {
            metric: metric.to_string(),
            label: definition.label.clone(),
            unit: definition.unit,
            lookback: crate::attribution::format_duration(settings.lookback),
            models: models.iter().map(|m| m.name().to_string()).collect(),
            rows: rows.into_iter().collect(),
            totals,
        })
    }

    /// The latest local day with data per source, over the tables the dashboard's simple
    /// metrics read (their time columns).
    async fn latest_days(&self, dashboard: &Dashboard) -> BTreeMap<String, Option<NaiveDate>> {
        let mut reads: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut pending: Vec<&Metric> = self
            .metrics_of(dashboard)
            .iter()
            .filter_map(|n| self.registry.metrics.get(*n))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(metric) = pending.pop() {
            if !seen.insert(metric.name.clone()) {
                continue;
            }
            if let crate::defs::MetricKind::Simple {
                table, time_column, ..
            } = &metric.kind
            {
                if !metrics::reads_attribution(self.registry, metric) {
                    reads.insert((metric.source.clone(), table.clone(), time_column.clone()));
                }
            }
            for part in metrics::parts(metric) {
                if let Some(m) = self.registry.metrics.get(&part) {
                    pending.push(m);
                }
            }
        }
        let limits = QueryLimits {
            timeout: std::time::Duration::from_secs(60),
            max_rows: 1,
        };
        let mut latest: BTreeMap<String, Option<NaiveDate>> = BTreeMap::new();
        for (source, table, column) in reads {
            let sql = format!("SELECT CAST(max({column}) AS VARCHAR) AS latest FROM {table}");
            let day = match self.engine.run_sql(&sql, limits).await {
                Ok(output) => output
                    .batches
                    .first()
                    .and_then(|b| {
                        use arrow::array::{Array, AsArray};
                        let column =
                            arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                                .ok()?;
                        let strings = column.as_string::<i32>();
                        (b.num_rows() > 0 && !strings.is_null(0))
                            .then(|| strings.value(0).to_string())
                    })
                    .and_then(|text| self.local_day(&text)),
                Err(_) => None,
            };
            let entry = latest.entry(source).or_insert(None);
            *entry = match (*entry, day) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        latest
    }

    fn local_day(&self, text: &str) -> Option<NaiveDate> {
        if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
            return Some(instant.with_timezone(&self.config.time_zone).date_naive());
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
                return Some(
                    naive
                        .and_utc()
                        .with_timezone(&self.config.time_zone)
                        .date_naive(),
                );
            }
        }
        NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
    }

    async fn health(
        &self,
        service: &MetricService<'_>,
        dashboard: &Dashboard,
        sources: &BTreeSet<String>,
        week: Period,
        settings: Settings,
    ) -> Health {
        let mut health = Health::default();
        let limits = QueryLimits {
            timeout: std::time::Duration::from_secs(120),
            max_rows: 1,
        };
        let versions = self.engine.data_versions().await;
        for table in self.engine.tables().await {
            let source = table.name.split('.').next().unwrap_or_default();
            if !sources.contains(source) {
                continue;
            }
            // Counting duplicates reads the whole table: once per data version of it.
            let key = (
                table.name.clone(),
                versions.get(&table.name).cloned().unwrap_or_default(),
            );
            let known = duplicate_counts()
                .lock()
                .ok()
                .and_then(|counts| counts.get(&key).copied());
            if let Some((rows, duplicates)) = known {
                health.duplicates.push(DuplicateCount {
                    table: table.name.clone(),
                    rows: Some(rows),
                    duplicates: Some(duplicates),
                    error: None,
                });
                continue;
            }
            let sql = format!(
                "SELECT (SELECT count(*) FROM {0}) AS landed, (SELECT count(*) FROM (SELECT DISTINCT * FROM {0})) AS distinct_rows",
                table.name
            );
            let counted = self.engine.run_sql(&sql, limits).await.and_then(|output| {
                use arrow::array::AsArray;
                let batch = output
                    .batches
                    .first()
                    .ok_or_else(|| Error::internal("no row"))?;
                let landed = batch
                    .column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0);
                let distinct = batch
                    .column(1)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0);
                Ok((landed, landed - distinct))
            });
            if let (Ok(counted), Ok(mut counts)) = (&counted, duplicate_counts().lock()) {
                if counts.len() > 1024 {
                    counts.clear();
                }
                counts.insert(key, *counted);
            }
            health.duplicates.push(match counted {
                Ok((rows, duplicates)) => DuplicateCount {
                    table: table.name.clone(),
                    rows: Some(rows),
                    duplicates: Some(duplicates),
                    error: None,
                },
                Err(error) => {
                    health.findings.push(format!(
                        "Table {} cannot be read: {}",
                        table.name, error.message
                    ));
                    DuplicateCount {
                        table: table.name.clone(),
                        rows: None,
                        duplicates: None,
                        error: Some(error.message),
                    }
                }
            });
        }
        for reconcile in &dashboard.reconcile {
            let left = self
                .by_dimension(service, &reconcile.left, &reconcile.by, week, settings)
                .await
                .unwrap_or_default();
            let right: BTreeMap<String, Option<f64>> = self
                .by_dimension(service, &reconcile.right, &reconcile.by, week, settings)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
            let mut rows = Vec::new();
            for (value, l) in left {
                let r = right.get(&value).copied().flatten();
                let gap = match (l, r) {
                    (Some(l), Some(r)) if l != 0.0 => Some(r / l - 1.0),
                    _ => None,
                };
                if let Some(g) = gap.filter(|g| g.abs() > reconcile.tolerance) {
                    health.findings.push(format!(
                        "{}: {value} has {:+.0}% {} against {} (tolerance {:.0}%).",
                        reconcile.label,
                        g * 100.0,
                        reconcile.right,
                        reconcile.left,
                        reconcile.tolerance * 100.0
                    ));
                }
                rows.push((value, l, r, gap));
            }
            health.reconcile.push(ReconcileTable {
                label: reconcile.label.clone(),
                left: reconcile.left.clone(),
                right: reconcile.right.clone(),
                by: reconcile.by.clone(),
                rows,
                tolerance: reconcile.tolerance,
            });
        }
        health
    }
}

/// Landed and duplicate row counts by (table, data version), shared by every report.
fn duplicate_counts() -> &'static DuplicateCounts {
    static COUNTS: std::sync::OnceLock<DuplicateCounts> = std::sync::OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

/// A funnel step's rate in words: a percentage between counts, else a value per unit of the
/// step before (clicks per $ of spend, $ of pipeline per SQL).
pub fn step_text(
    ratio: f64,
    previous_unit: Option<Unit>,
    unit: Unit,
    previous: Option<&str>,
) -> String {
    match previous_unit {
        Some(Unit::Count) if unit == Unit::Count => format!("{:.1}%", ratio * 100.0),
        Some(Unit::Currency) => format!("{ratio:.2} per $"),
        _ => format!(
            "{} per {}",
            metrics::format_value(unit, Some(ratio)),
            previous.unwrap_or("step").trim_end_matches('s')
        ),
    }
}

fn tile_from(metric: &Metric, series: &metrics::Series, dashboard: &Dashboard) -> Tile {
    let last = series.points.last();
    let value = last.and_then(|p| p.value);
    let target = last.and_then(|p| p.target);
    let target_status = match (value, target) {
        (Some(v), Some(t)) if t != 0.0 => {
            let share = v / t;
            let behind = dashboard.thresholds.behind_target;
            Some(match metric.good {
                Good::Down if share > 2.0 - behind => TargetStatus::Behind,
                Good::Down if share <= 1.0 => TargetStatus::Ahead,
                Good::Down => TargetStatus::OnTrack,
                _ if share < behind => TargetStatus::Behind,
                _ if share >= 1.0 => TargetStatus::Ahead,
                _ => TargetStatus::OnTrack,
            })
        }
        _ => None,
    };
    Tile {
        metric: metric.name.clone(),
        label: metric.label.clone(),
        unit: metric.unit,
        good: metric.good,
        value,
        comparisons: last.map(|p| p.comparisons.clone()).unwrap_or_default(),
        target,
        target_status,
        sparkline: series
            .points
            .iter()
            .map(|p| (p.period.clone(), p.value))
            .collect(),
        unavailable: value.is_none().then_some(Unavailable::NoData),
        sources: metric.sources.clone(),
        attribution: series.attribution.clone(),
        definition_changes: Vec::new(),
    }
}

fn unavailable_tile(metric: &Metric, reason: String) -> Tile {
    Tile {
        metric: metric.name.clone(),
        label: metric.label.clone(),
        unit: metric.unit,
        good: metric.good,
        value: None,
        comparisons: BTreeMap::new(),
        target: None,
        target_status: None,
        sparkline: Vec::new(),
        unavailable: Some(Unavailable::Failed(reason)),
        sources: metric.sources.clone(),
        attribution: None,
        definition_changes: Vec::new(),
    }
}

/// Writes the summary: what changed for each headline KPI, then what improved and what needs a
/// follow-up across all tiles (changes beyond the threshold in the good or bad direction,
/// target status, unavailable KPIs, data-health findings).
fn summarise(report: &Report, dashboard: &Dashboard) -> Vec<Sentence> {
    let mut out = Vec::new();
    let format = |t: &Tile, v: Option<f64>| metrics::format_value(t.unit, v);
    let percent = |r: f64| format!("{:+.1}%", r * 100.0);
    for tile in &report.primary {
        let Some(value) = tile.value else { continue };
        let mut parts = vec![format!("{} was {}", tile.label, format(tile, Some(value)))];
        if let Some(c) = tile
            .comparisons
            .get("previous")
            .and_then(|c| c.change_ratio)
        {
            parts.push(format!("{} against the week before", percent(c)));
        }
        if let Some(c) = tile
            .comparisons
            .get("year_ago")
            .and_then(|c| c.change_ratio)
        {
            parts.push(format!("{} against a year ago", percent(c)));
        }
        out.push(Sentence {
            kind: SentenceKind::Changed,
            text: format!("{}.", parts.join(", ")),
            metric: Some(tile.metric.clone()),
        });
    }
    let all = report
        .primary
        .iter()
        .chain(report.sections.iter().flat_map(|s| s.tiles.iter()));
    for tile in all {
        for change in &tile.definition_changes {
            out.push(Sentence {
                kind: SentenceKind::FollowUp,
                text: format!(
                    "{}: {change}; weeks before and after are computed differently.",
                    tile.label
                ),
                metric: Some(tile.metric.clone()),
            });
        }
        if let Some(reason) = &tile.unavailable {
            if tile.comparisons.is_empty() || *reason != Unavailable::NoData {
                out.push(Sentence {
                    kind: SentenceKind::FollowUp,
                    text: format!("{} is unavailable: {reason}.", tile.label),
                    metric: Some(tile.metric.clone()),
                });
            }
            continue;
        }
        if let Some(change) = tile
            .comparisons
            .get("previous")
            .and_then(|c| c.change_ratio)
        {
            if change.abs() >= dashboard.thresholds.change && tile.good != Good::Neutral {
                let better = (change > 0.0) == (tile.good == Good::Up);
                out.push(Sentence {
                    kind: if better {
                        SentenceKind::Improved
                    } else {
                        SentenceKind::FollowUp
                    },
                    text: format!(
                        "{} {} {:.1}% week over week, to {}.",
                        tile.label,
                        if change > 0.0 { "rose" } else { "fell" },
                        change.abs() * 100.0,
                        format(tile, tile.value)
                    ),
                    metric: Some(tile.metric.clone()),
                });
            }
        }
        match tile.target_status {
            Some(TargetStatus::Behind) => out.push(Sentence {
                kind: SentenceKind::FollowUp,
                text: format!(
                    "{} is {} its target of {} ({:.0}% of it).",
                    tile.label,
                    if tile.good == Good::Down {
                        "above"
                    } else {
                        "behind"
                    },
                    format(tile, tile.target),
                    tile.value
                        .zip(tile.target)
                        .map(|(v, t)| v / t * 100.0)
                        .unwrap_or(0.0)
                ),
                metric: Some(tile.metric.clone()),
            }),
            Some(TargetStatus::Ahead) => out.push(Sentence {
                kind: SentenceKind::Improved,
                text: format!(
                    "{} is ahead of its target of {}.",
                    tile.label,
                    format(tile, tile.target)
                ),
                metric: Some(tile.metric.clone()),
            }),
            _ => {}
        }
    }
    for banner in &report.banners {
        out.push(Sentence {
            kind: SentenceKind::FollowUp,
            text: banner.clone(),
            metric: None,
        });
    }
    for finding in &report.health.findings {
        out.push(Sentence {
            kind: SentenceKind::FollowUp,
            text: finding.clone(),
            metric: None,
        });
    }
    out
}

/// Every number of a report as CSV: `section,metric,period,dimension,model,value`.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from("section,metric,period,dimension,model,value\n");
    let mut row = |section: &str,
                   metric: &str,
                   period: &str,
                   dimension: &str,
                   model: &str,
                   value: Option<f64>| {
        let cells = [section, metric, period, dimension, model];
        let cells: Vec<String> = cells
            .iter()
            .map(|c| {
                if c.contains([',', '"', '\n']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.to_string()
                }
            })
            .collect();
        out.push_str(&format!(
            "{},{}\n",
            cells.join(","),
            value.map(|v| v.to_string()).unwrap_or_default()
        ));
    };
    for tile in report
        .primary
        .iter()
        .chain(report.sections.iter().flat_map(|s| s.tiles.iter()))
    {
        row("tile", &tile.metric, &report.week, "", "", tile.value);
        for (name, c) in &tile.comparisons {
            row(
                &format!("tile:{name}"),
                &tile.metric,
                &c.period,
                "",
                "",
                c.value,
            );
        }
        if tile.target.is_some() {
            row(
                "tile:target",
                &tile.metric,
                &report.week,
                "",
                "",
                tile.target,
            );
        }
    }
    for chart in &report.charts {
        for p in &chart.points {
            let dimension = if chart.kind == ChartType::Breakdown {
                p.label.as_str()
            } else {
                ""
            };
            row(
                &format!("chart:{}", chart.name),
                &p.metric,
                &p.period,
                dimension,
                "",
                p.value,
            );
        }
    }
    if let Some(b) = &report.breakdown {
        for (value, values) in &b.rows {
            for (column, v) in b.columns.iter().zip(values) {
                let model = column
                    .attribution
                    .as_ref()
                    .map(|a| a.model.as_str())
                    .unwrap_or("");
                row(
                    "breakdown",
                    &column.metric,
                    &report.week,
                    &format!("{}={value}", b.by),
                    model,
                    *v,
                );
            }
        }
    }
    if let Some(c) = &report.attribution_comparison {
        for (channel, values) in &c.rows {
            for (model, v) in c.models.iter().zip(values) {
                row(
                    "attribution",
                    &c.metric,
                    &report.week,
                    &format!("channel={channel}"),
                    model,
                    *v,
                );
            }
        }
    }
    out
}
