//! Metric series: one metric, over a range of periods, optionally sliced and filtered by its
//! dimensions, with comparisons. The single place where a metric definition becomes numbers,
//! used by the CLI, the JSON API and (later) reports alike.
//!
//! Rules, applied the same way for every metric and period:
//! - a simple metric's value for a period is its measure over the rows whose time column falls
//!   in `[start, end)` (local dates for date columns; instants of local midnight in the
//!   reporting time zone for timestamps); a period with no rows has no value (`null`), not 0;
//! - a ratio sums numerator and denominator over the period (and per dimension value) before
//!   dividing; a missing numerator counts as 0; an empty or zero denominator gives no value;
//! - a derived metric evaluates its expression on its parts' values (missing parts count as 0
//!   when another part has a value; division by zero gives no value);
//! - a cumulative metric adds its (additive) base over `[window start, period end)`, where the
//!   window starts at the start of the week, month, quarter or year containing the period's last
//!   day, or at the beginning of the data for `running`;
//! - comparisons: `previous` (the period before), `year_ago` (same week number a year earlier,
//!   see `time.rs`), `trailing_4` (mean of the values of the 4 periods before, over those that
//!   have a value); each with the absolute change and the relative change (`change / |base|`,
//!   none when the base is 0 or missing).

mod judging;
mod text;
mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;

use crate::attribution::{format_duration, Settings};
use crate::defs::{Metric, MetricKind, Registry, Unit};
use crate::engine::Engine;
use crate::error::{Error, Result};
pub use crate::time::Comparison;
use crate::time::{Calendar, Grain, Period};
pub use text::{
    describe_sql, format_display, format_value, parse_comparisons, parse_filters, parse_range,
    to_csv, to_table,
};

/// What to compute.
#[derive(Debug, Clone)]
pub struct SeriesRequest {
    /// Metric name.
    pub metric: String,
    /// First period.
    pub from: Period,
    /// Last period (included).
    pub to: Period,
    /// Dimensions to slice by.
    pub by: Vec<String>,
    /// Dimension = value filters.
    pub filters: Vec<(String, String)>,
    /// Comparisons to attach to each value.
    pub compare: Vec<Comparison>,
    /// Attribution model and lookback for metrics that read `reporting.attribution`
    /// (`None`: the project default from `kpi.toml`).
    pub attribution: Option<Settings>,
}

/// One comparison of one value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ComparisonValue {
    /// Label of the period compared with (`2026-W43..2026-W46` for trailing means).
    pub period: String,
    /// The value compared with.
    pub value: Option<f64>,
    /// `value - base`.
    pub change: Option<f64>,
    /// `(value - base) / |base|`.
    pub change_ratio: Option<f64>,
    /// What the base is, in words, when the comparison's name does not say it
    /// (`previous_window`: "the same week of the previous quarter").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

/// How far a conversion cohort has been observed: a period's cohort is still maturing until
/// the data reaches the end of the window of its last entrant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Maturity {
    /// Days of data after the period's last day: what its last entrants have had.
    pub days_observed: i64,
    /// Days of data after the period's first day: what its first entrants have had.
    pub days_observed_first: i64,
    /// Days the conversion window needs.
    pub days_needed: i64,
}

impl Maturity {
    /// The cohort of `period` under a `days_needed`-day window when the data reaches `latest`
    /// (a local day, included): `None` once every entrant's window has closed.
    pub fn of(period: Period, days_needed: i64, latest: NaiveDate) -> Option<Self> {
        let last = period.last_day();
        if latest >= last + chrono::Duration::days(days_needed) {
            return None;
        }
        let observed = |day: NaiveDate| (latest - day).num_days().clamp(0, days_needed);
        Some(Self {
            days_observed: observed(last),
            days_observed_first: observed(period.start),
            days_needed,
        })
    }

    /// The maturity in words: `7 to 13 of its 30 days observed`.
    pub fn describe(&self) -> String {
        let days = if self.days_observed == self.days_observed_first {
            self.days_observed.to_string()
        } else {
            format!("{} to {}", self.days_observed, self.days_observed_first)
        };
        format!("{days} of its {} days observed", self.days_needed)
    }
}

/// One value of the series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Point {
    /// Period label (`2026-W47`).
    pub period: String,
    /// First day.
    pub start: NaiveDate,
    /// Last day (inclusive).
    pub end: NaiveDate,
    /// Dimension values, by dimension name.
    pub dimensions: BTreeMap<String, Option<String>>,
    /// The value; `null` when the period has no data.
    pub value: Option<f64>,
    /// The weekly target in force, for week grain.
    pub target: Option<f64>,
    /// One entry per comparison asked for (none for a maturing cohort, which is compared with
    /// nothing: an immature cohort always looks worse than a matured one).
    pub comparisons: BTreeMap<String, ComparisonValue>,
    /// Whether the value is a conversion cohort whose window has not closed by the data's
    /// latest day: it will still rise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub maturing: bool,
    /// How far a maturing cohort has been observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maturity: Option<Maturity>,
}

/// A computed series.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Series {
    /// Metric name.
    pub metric: String,
    /// Human label.
    pub label: String,
    /// Unit.
    pub unit: Unit,
    /// Currency of currency metrics.
    pub currency: Option<String>,
    /// Sources of truth.
    pub sources: Vec<String>,
    /// Definition hash.
    pub definition_hash: String,
    /// Grain.
    pub grain: Grain,
    /// Dimensions sliced by.
    pub by: Vec<String>,
    /// Filters applied.
    pub filters: BTreeMap<String, String>,
    /// For attributed metrics, the model and lookback that produced the numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<AttributionUsed>,
    /// The values.
    pub points: Vec<Point>,
}

/// The attribution settings an attributed series was computed with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct AttributionUsed {
    /// Model name (`linear`).
    pub model: String,
    /// Lookback (`30d`).
    pub lookback: String,
    /// Both in words (`linear, 30d lookback`).
    pub label: String,
}

impl From<Settings> for AttributionUsed {
    fn from(settings: Settings) -> Self {
        Self {
            model: settings.model.name().to_string(),
            lookback: format_duration(settings.lookback),
            label: settings.label(),
        }
    }
}

type Key = (usize, Vec<Option<String>>);
type Values = HashMap<Key, f64>;

/// Computes metric series against an engine.
pub struct MetricService<'a> {
    registry: &'a Registry,
    engine: &'a Engine,
    calendar: Calendar,
    /// Whether each series lists the data root first (`false` inside a report, which lists
    /// once and reads every number from that one listing).
    list_each: bool,
}

impl<'a> MetricService<'a> {
    /// Builds the service.
    pub fn new(registry: &'a Registry, engine: &'a Engine, calendar: Calendar) -> Self {
        Self {
            registry,
            engine,
            calendar,
            list_each: true,
        }
    }

    /// The same service over the data as last listed: no series lists the data root again,
    /// so every number of one report comes from one data version.
    pub fn as_listed(mut self) -> Self {
        self.list_each = false;
        self
    }

    /// Returns the metric or a not-found error.
    pub fn metric(&self, name: &str) -> Result<&'a Metric> {
        self.registry.metrics.get(name).ok_or_else(|| {
            Error::not_found(
                "unknown_metric",
                format!("no metric named `{name}`; the catalog is at /api/v1/metrics"),
            )
        })
    }

    /// Computes the series of `request`.
    pub async fn series(&self, request: &SeriesRequest) -> Result<Series> {
        let metric = self.metric(&request.metric)?;
        let settings = self.attribution_for(metric, request)?;
        check_dimensions(metric, request)?;
        // One listing of the data root per series, however many parts the metric has.
        if self.list_each {
            self.engine.refresh().await?;
        }
        let main = self.periods(request)?;
        let compare = self.comparisons_for(metric, &request.compare);
        let mut needed: BTreeSet<Period> = main.iter().copied().collect();
        for period in &main {
            for comparison in &compare {
                needed.extend(self.compared_periods(metric, *comparison, *period));
            }
        }
        let needed: Vec<Period> = needed.into_iter().collect();
        let index: HashMap<Period, usize> =
            needed.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let values = self
            .values(metric, &needed, &request.by, &request.filters, settings)
            .await?;
        let cohort = self.cohort_window(metric).await;

        let main_indexes: BTreeSet<usize> = main.iter().map(|p| index[p]).collect();
        let mut combinations: BTreeSet<Vec<Option<String>>> = values
            .keys()
            .filter(|(period, _)| main_indexes.contains(period))
            .map(|(_, dims)| dims.clone())
            .collect();
        if request.by.is_empty() {
            combinations.insert(Vec::new());
        }
        let mut points = Vec::new();
        for period in &main {
            for combination in &combinations {
                let lookup = |p: &Period| values.get(&(index[p], combination.clone())).copied();
                let value = lookup(period);
                let maturity =
                    cohort.and_then(|(days, latest)| Maturity::of(*period, days, latest));
                let comparisons = compare
                    .iter()
                    .filter(|_| maturity.is_none())
                    .map(|comparison| {
                        let periods = self.compared_periods(metric, *comparison, *period);
                        let present: Vec<f64> = periods.iter().filter_map(lookup).collect();
                        let mut compared =
                            self::compare(*comparison, value, &present, self.range_label(&periods));
                        compared.basis = self.basis(metric, *comparison);
                        (comparison.name().to_string(), compared)
                    })
                    .collect();
                let label = self.calendar.label(*period);
                let target = (period.grain() == Grain::Week)
                    .then(|| target_for(metric, &label))
                    .flatten();
                points.push(Point {
                    period: label,
                    start: period.start,
                    end: period.last_day(),
                    dimensions: request
                        .by
                        .iter()
                        .cloned()
                        .zip(combination.iter().cloned())
                        .collect(),
                    value,
                    target,
                    comparisons,
                    maturing: maturity.is_some(),
                    maturity,
                });
            }
        }
        Ok(Series {
            metric: metric.name.clone(),
            label: metric.label.clone(),
            unit: metric.unit,
            currency: metric.currency.clone(),
            sources: metric.sources.clone(),
            definition_hash: metric.hash.clone(),
            grain: request.from.grain(),
            by: request.by.clone(),
            filters: request.filters.iter().cloned().collect(),
            attribution: settings.map(AttributionUsed::from),
            points,
        })
    }

    /// The attribution settings of an attributed metric (the request's or the project
    /// default); `None` for other metrics, which must not be asked for a model.
    fn attribution_for(
        &self,
        metric: &Metric,
        request: &SeriesRequest,
    ) -> Result<Option<Settings>> {
        let attributed = reads_attribution(self.registry, metric);
        if request.attribution.is_some() && !attributed {
            return Err(Error::input(
                "not_attributed",
                format!(
                    "metric `{}` does not read reporting.attribution, so a model or lookback does not apply to it",
                    metric.name
                ),
            ));
        }
        Ok(attributed.then(|| {
            request
                .attribution
                .unwrap_or(self.engine.config().attribution.default)
        }))
    }

    /// The periods of the series: `from` to `to`, at most 2000.
    fn periods(&self, request: &SeriesRequest) -> Result<Vec<Period>> {
        if request.from.grain != request.to.grain || request.from.start > request.to.start {
            return Err(Error::input("bad_range", "`from` must not be after `to`"));
        }
        let main = self.calendar.range(request.from, request.to);
        if main.len() > 2000 {
            return Err(Error::input(
                "bad_range",
                format!("{} periods asked; at most 2000", main.len()),
            ));
        }
        Ok(main)
    }

    /// `2026-W43..2026-W46` for several periods, the label for one.
    fn range_label(&self, periods: &[Period]) -> String {
        match (periods.first(), periods.last()) {
            (Some(first), Some(last)) if periods.len() > 1 => format!(
                "{}..{}",
                self.calendar.label(*first),
                self.calendar.label(*last)
            ),
            (Some(first), _) => self.calendar.label(*first),
            _ => String::new(),
        }
    }
}

/// Refuses a slice or filter by a dimension the metric does not allow.
fn check_dimensions(metric: &Metric, request: &SeriesRequest) -> Result<()> {
    for dimension in request
        .by
        .iter()
        .chain(request.filters.iter().map(|(d, _)| d))
    {
        if !metric.dimensions.contains(dimension) {
            return Err(Error::input(
                "dimension_not_allowed",
                format!(
                    "metric `{}` cannot be sliced by `{dimension}`; allowed: {}",
                    metric.name,
                    if metric.dimensions.is_empty() {
                        "none".to_string()
                    } else {
                        metric.dimensions.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// One comparison of `value` with the values of the compared periods that have one: the
/// first of them (`previous`, `year_ago`) or their mean (`trailing_4`), with the change and
/// the change relative to the base's magnitude (none when the base is 0 or missing).
pub fn compare(
    comparison: Comparison,
    value: Option<f64>,
    present: &[f64],
    period: String,
) -> ComparisonValue {
    let base = match comparison {
        Comparison::Trailing4 if present.is_empty() => None,
        Comparison::Trailing4 => Some(present.iter().sum::<f64>() / present.len() as f64),
        _ => present.first().copied(),
    };
    let change = value.zip(base).map(|(v, b)| v - b);
    let change_ratio = change
        .zip(base)
        .and_then(|(c, b)| (b != 0.0).then(|| c / b.abs()));
    ComparisonValue {
        period,
        value: base,
        change,
        change_ratio,
        basis: None,
    }
}

/// Returns the weekly target in force for week `label`: the latest target whose key is not
/// after the week.
pub fn target_for(metric: &Metric, label: &str) -> Option<f64> {
    metric
        .targets
        .range(..=label.to_string())
        .next_back()
        .map(|(_, value)| *value)
}

/// Returns the attribution settings a request asks for: `None` when it names neither a model
/// nor a lookback (the project default applies), else the default with what it names replaced.
pub fn attribution_choice(
    config: &crate::config::AttributionConfig,
    model: Option<&str>,
    lookback: Option<&str>,
) -> Result<Option<Settings>> {
    if model.is_none() && lookback.is_none() {
        return Ok(None);
    }
    config
        .settings(model, lookback)
        .map(Some)
        .map_err(|message| Error::input("bad_attribution", message))
}

/// Returns whether a metric's value depends on the attribution model: it reads
/// `reporting.attribution` itself or through one of its parts.
pub fn reads_attribution(registry: &Registry, metric: &Metric) -> bool {
    crate::defs::reads_attribution(&registry.metrics, metric)
}

/// Returns the metrics a metric is computed from (empty for simple and conversion metrics).
pub fn parts(metric: &Metric) -> Vec<String> {
    match &metric.kind {
        MetricKind::Ratio {
            numerator,
            denominator,
        } => vec![numerator.clone(), denominator.clone()],
        MetricKind::Derived { parsed, .. } => parsed.metrics(),
        MetricKind::Cumulative { of, .. } => vec![of.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_take_the_first_base_or_the_trailing_mean() {
        let previous = compare(Comparison::Previous, Some(120.0), &[100.0], "W44".into());
        assert_eq!(previous.value, Some(100.0));
        assert_eq!(previous.change, Some(20.0));
        assert_eq!(previous.change_ratio, Some(0.2));
        let trailing = compare(
            Comparison::Trailing4,
            Some(90.0),
            &[80.0, 100.0],
            "W".into(),
        );
        assert_eq!(trailing.value, Some(90.0));
        assert_eq!(trailing.change_ratio, Some(0.0));
    }

    #[test]
    fn a_zero_or_missing_base_has_no_relative_change() {
        let zero = compare(Comparison::YearAgo, Some(5.0), &[0.0], "W".into());
        assert_eq!(zero.change, Some(5.0));
        assert_eq!(zero.change_ratio, None);
        let missing = compare(Comparison::Trailing4, Some(5.0), &[], "W".into());
        assert_eq!(missing.value, None);
        assert_eq!(missing.change, None);
        let negative = compare(Comparison::Previous, Some(-50.0), &[-100.0], "W".into());
        assert_eq!(
            negative.change_ratio,
            Some(0.5),
            "relative to the base's magnitude"
        );
    }
}
