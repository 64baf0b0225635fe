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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;

use chrono::{Datelike, NaiveDate};

use crate::attribution::{format_duration, Settings};
use crate::defs::{CumulativeWindow, Metric, MetricKind, Registry, Unit};
use crate::engine::aggregate::{AggregateQuery, Bucket};
use crate::engine::Engine;
use crate::error::{Error, Result};
pub use crate::time::Comparison;
use crate::time::{Calendar, Grain, Period};

/// Parses a comma-separated list of comparisons from a flag or URL (`bad_comparison`).
pub fn parse_comparisons(text: &str) -> Result<Vec<Comparison>> {
    Comparison::parse_list(text).map_err(|message| Error::input("bad_comparison", message))
}

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComparisonValue {
    /// Label of the period compared with (`2026-W43..2026-W46` for trailing means).
    pub period: String,
    /// The value compared with.
    pub value: Option<f64>,
    /// `value - base`.
    pub change: Option<f64>,
    /// `(value - base) / |base|`.
    pub change_ratio: Option<f64>,
}

/// One value of the series.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    /// One entry per comparison asked for.
    pub comparisons: BTreeMap<String, ComparisonValue>,
}

/// A computed series.
#[derive(Debug, Clone, serde::Serialize)]
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
}

impl<'a> MetricService<'a> {
    /// Builds the service.
    pub fn new(registry: &'a Registry, engine: &'a Engine, calendar: Calendar) -> Self {
        Self {
            registry,
            engine,
            calendar,
        }
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
        let settings = attributed.then(|| {
            request
                .attribution
                .unwrap_or(self.engine.config().attribution.default)
        });
        // One listing of the data root per series, however many parts the metric has.
        self.engine.refresh().await?;
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
        let mut needed: BTreeSet<Period> = main.iter().copied().collect();
        for period in &main {
            for comparison in &request.compare {
                needed.extend(comparison.periods(&self.calendar, *period));
            }
        }
        let needed: Vec<Period> = needed.into_iter().collect();
        let index: HashMap<Period, usize> =
            needed.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let values = self
            .values(metric, &needed, &request.by, &request.filters, settings)
            .await?;

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
                let mut comparisons = BTreeMap::new();
                for comparison in &request.compare {
                    let periods = comparison.periods(&self.calendar, *period);
                    let present: Vec<f64> = periods.iter().filter_map(lookup).collect();
                    let base = match comparison {
                        Comparison::Trailing4 if present.is_empty() => None,
                        Comparison::Trailing4 => {
                            Some(present.iter().sum::<f64>() / present.len() as f64)
                        }
                        _ => present.first().copied(),
                    };
                    let label = match (periods.first(), periods.last()) {
                        (Some(first), Some(last)) if periods.len() > 1 => {
                            format!(
                                "{}..{}",
                                self.calendar.label(*first),
                                self.calendar.label(*last)
                            )
                        }
                        (Some(first), _) => self.calendar.label(*first),
                        _ => String::new(),
                    };
                    let change = value.zip(base).map(|(v, b)| v - b);
                    let change_ratio = change
                        .zip(base)
                        .and_then(|(c, b)| (b != 0.0).then(|| c / b.abs()));
                    comparisons.insert(
                        comparison.name().to_string(),
                        ComparisonValue {
                            period: label,
                            value: base,
                            change,
                            change_ratio,
                        },
                    );
                }
                let dimensions = request
                    .by
                    .iter()
                    .cloned()
                    .zip(combination.iter().cloned())
                    .collect();
                let label = self.calendar.label(*period);
                let target = (period.grain() == Grain::Week)
                    .then(|| target_for(metric, &label))
                    .flatten();
                points.push(Point {
                    period: label,
                    start: period.start,
                    end: period.last_day(),
                    dimensions,
                    value,
                    target,
                    comparisons,
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

    /// Returns the metric's values for every period (by index) and dimension combination.
    fn values<'s>(
        &'s self,
        metric: &'s Metric,
        periods: &'s [Period],
        by: &'s [String],
        filters: &'s [(String, String)],
        settings: Option<Settings>,
    ) -> Pin<Box<dyn Future<Output = Result<Values>> + Send + 's>> {
        Box::pin(async move {
            match &metric.kind {
                MetricKind::Simple {
                    measure,
                    table,
                    time_column,
                    filter,
                } => {
                    self.aggregate(
                        table,
                        measure,
                        filter.as_deref(),
                        time_column,
                        periods,
                        by,
                        filters,
                        settings,
                    )
                    .await
                }
                MetricKind::Conversion { view, .. } => {
                    self.aggregate(
                        view,
                        "AVG(__converted)",
                        None,
                        "__at",
                        periods,
                        by,
                        filters,
                        settings,
                    )
                    .await
                }
                MetricKind::Ratio {
                    numerator,
                    denominator,
                } => {
                    let numerator = self
                        .values(self.metric(numerator)?, periods, by, filters, settings)
                        .await?;
                    let denominator = self
                        .values(self.metric(denominator)?, periods, by, filters, settings)
                        .await?;
                    let mut out = Values::new();
                    for (key, den) in &denominator {
                        if *den != 0.0 {
                            out.insert(
                                key.clone(),
                                numerator.get(key).copied().unwrap_or(0.0) / den,
                            );
                        }
                    }
                    Ok(out)
                }
                MetricKind::Derived { parsed, .. } => {
                    let mut parts = HashMap::new();
                    for part in parsed.metrics() {
                        let values = self
                            .values(self.metric(&part)?, periods, by, filters, settings)
                            .await?;
                        parts.insert(part, values);
                    }
                    let keys: BTreeSet<Key> = parts
                        .values()
                        .flat_map(|values| values.keys().cloned())
                        .collect();
                    let mut out = Values::new();
                    for key in keys {
                        let inputs = parts
                            .iter()
                            .map(|(name, values)| {
                                (name.clone(), Some(values.get(&key).copied().unwrap_or(0.0)))
                            })
                            .collect();
                        if let Some(value) = parsed.evaluate(&inputs) {
                            out.insert(key, value);
                        }
                    }
                    Ok(out)
                }
                MetricKind::Cumulative { of, window } => {
                    let base = self.metric(of)?;
                    let windows: Vec<(NaiveDate, NaiveDate)> = periods
                        .iter()
                        .map(|period| (self.window_start(*window, period.last_day()), period.end))
                        .collect();
                    // Split time at every boundary into non-overlapping atoms; each window is
                    // the sum of the atoms it covers.
                    let boundaries: BTreeSet<NaiveDate> =
                        windows.iter().flat_map(|(s, e)| [*s, *e]).collect();
                    let boundaries: Vec<NaiveDate> = boundaries.into_iter().collect();
                    let atoms: Vec<(NaiveDate, NaiveDate)> =
                        boundaries.windows(2).map(|w| (w[0], w[1])).collect();
                    let atom_periods: Vec<Period> = atoms
                        .iter()
                        // Atoms are arbitrary day ranges; only their bounds are used.
                        .map(|(start, end)| Period {
                            start: *start,
                            end: *end,
                            grain: 0,
                        })
                        .collect();
                    let atom_values = self
                        .values(base, &atom_periods, by, filters, settings)
                        .await?;
                    let mut out = Values::new();
                    for (index, (start, end)) in windows.iter().enumerate() {
                        let mut sums: HashMap<Vec<Option<String>>, f64> = HashMap::new();
                        for ((atom, dims), value) in &atom_values {
                            let (atom_start, atom_end) = atoms[*atom];
                            if atom_start >= *start && atom_end <= *end {
                                *sums.entry(dims.clone()).or_default() += value;
                            }
                        }
                        for (dims, sum) in sums {
                            out.insert((index, dims), sum);
                        }
                    }
                    Ok(out)
                }
            }
        })
    }

    fn window_start(&self, window: CumulativeWindow, last_day: NaiveDate) -> NaiveDate {
        let grain = match window {
            CumulativeWindow::Week => Grain::Week,
            CumulativeWindow::Month => Grain::Month,
            CumulativeWindow::Quarter => Grain::Quarter,
            CumulativeWindow::Year => {
                return NaiveDate::from_ymd_opt(last_day.year(), 1, 1).unwrap_or(last_day)
            }
            CumulativeWindow::Running => {
                return NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(last_day)
            }
        };
        self.calendar.period_of(last_day, grain).start
    }

    #[allow(clippy::too_many_arguments)]
    async fn aggregate(
        &self,
        table: &str,
        measure: &str,
        filter: Option<&str>,
        time_column: &str,
        periods: &[Period],
        by: &[String],
        filters: &[(String, String)],
        attribution: Option<Settings>,
    ) -> Result<Values> {
        let buckets = periods
            .iter()
            .map(|period| {
                let (start, end) = self.calendar.instants(*period);
                Bucket {
                    start_day: period.start,
                    end_day: period.end,
                    start,
                    end,
                }
            })
            .collect();
        let query = AggregateQuery {
            table: table.to_string(),
            measure: measure.to_string(),
            filter: filter.map(str::to_string),
            time_column: time_column.to_string(),
            buckets,
            dimensions: by.to_vec(),
            equals: filters.to_vec(),
            attribution,
        };
        let rows = self.engine.aggregate(&query).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| row.value.map(|value| ((row.bucket, row.dimensions), value)))
            .collect())
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

/// Writes a series as CSV: one row per point, comparison columns after the value.
pub fn to_csv(series: &Series, compare: &[Comparison]) -> String {
    use crate::render::csv::{number, CsvText};
    let mut header: Vec<String> = vec!["period".into(), "start".into(), "end".into()];
    header.extend(series.by.iter().cloned());
    header.push("value".into());
    header.push("target".into());
    for comparison in compare {
        let name = comparison.name();
        header.extend([
            format!("{name}_period"),
            format!("{name}_value"),
            format!("{name}_change"),
            format!("{name}_change_ratio"),
        ]);
    }
    let mut text = CsvText::new(&header);
    for point in &series.points {
        let mut cells = vec![
            point.period.clone(),
            point.start.to_string(),
            point.end.to_string(),
        ];
        for dimension in &series.by {
            cells.push(
                point
                    .dimensions
                    .get(dimension)
                    .cloned()
                    .flatten()
                    .unwrap_or_default(),
            );
        }
        cells.push(number(point.value));
        cells.push(number(point.target));
        for comparison in compare {
            match point.comparisons.get(comparison.name()) {
                Some(c) => cells.extend([
                    c.period.clone(),
                    number(c.value),
                    number(c.change),
                    number(c.change_ratio),
                ]),
                None => cells.extend([String::new(), String::new(), String::new(), String::new()]),
            }
        }
        text.row(&cells);
    }
    text.finish()
}

/// Parses `DIM=VALUE` filters.
pub fn parse_filters(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(d, v)| (d.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| {
                    Error::input(
                        "bad_filter",
                        format!("filter `{item}` must be DIMENSION=VALUE"),
                    )
                })
        })
        .collect()
}

/// Resolves `from`/`to` labels into periods of `grain`.
pub fn parse_range(
    calendar: &Calendar,
    from: &str,
    to: &str,
    grain: Grain,
) -> Result<(Period, Period)> {
    let bad = |message: String| Error::input("bad_period", message);
    let from = calendar.parse_as(from, grain, false).map_err(bad)?;
    let to = calendar.parse_as(to, grain, true).map_err(bad)?;
    if from.start > to.start {
        return Err(Error::input("bad_range", "`from` is after `to`"));
    }
    Ok((from, to))
}

/// Formats a value for people: currency with cents, percent and ratio metrics as percentages
/// with one decimal, counts with thousands separators.
pub fn format_value(unit: Unit, value: Option<f64>) -> String {
    let Some(value) = value else {
        return "—".to_string();
    };
    match unit {
        Unit::Percent => format!("{:.1}%", value * 100.0),
        Unit::Ratio => format!("{value:.3}"),
        Unit::Currency => format!(
            "{}{}",
            if value < 0.0 { "-" } else { "" },
            group_thousands(&format!("{:.2}", value.abs()))
        ),
        _ if value.fract() == 0.0 => group_thousands(&format!("{value:.0}")),
        _ => format!("{value:.2}"),
    }
}

fn group_thousands(text: &str) -> String {
    let (whole, fraction) = text
        .split_once('.')
        .map_or((text, None), |(w, f)| (w, Some(f)));
    let (sign, digits) = whole
        .strip_prefix('-')
        .map_or(("", whole), |rest| ("-", rest));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Renders a series as an aligned text table for terminals.
pub fn to_table(series: &Series, compare: &[Comparison]) -> String {
    let mut header: Vec<String> = vec!["period".into()];
    header.extend(series.by.iter().cloned());
    header.push(series.metric.clone());
    for comparison in compare {
        header.push(comparison.name().to_string());
        header.push("change".to_string());
    }
    let mut rows = vec![header];
    for point in &series.points {
        let mut row = vec![point.period.clone()];
        for dimension in &series.by {
            row.push(
                point
                    .dimensions
                    .get(dimension)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "(null)".into()),
            );
        }
        row.push(format_value(series.unit, point.value));
        for comparison in compare {
            let entry = point.comparisons.get(comparison.name());
            row.push(format_value(series.unit, entry.and_then(|c| c.value)));
            row.push(
                entry
                    .and_then(|c| c.change_ratio)
                    .map(|r| format!("{:+.1}%", r * 100.0))
                    .unwrap_or_else(|| "—".into()),
            );
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                let pad = width - cell.chars().count();
                if column == 0 || column <= series.by.len() {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if index == 0 {
            out.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    out
}

/// Describes in SQL what runs for a metric, for its catalog page. Bounds are shown as
/// `:period_start` and `:period_end` (instants of local midnight for timestamp columns).
pub fn describe_sql(registry: &Registry, metric: &Metric) -> String {
    match &metric.kind {
        MetricKind::Simple {
            measure,
            table,
            time_column,
            filter,
        } => {
            let dimensions: String = metric.dimensions.iter().map(|d| format!(", {d}")).collect();
            let filter = filter
                .as_ref()
                .map(|f| format!("\n  AND ({f})"))
                .unwrap_or_default();
            format!(
                "SELECT <period of {time_column}> AS period{dimensions}, {measure} AS value\nFROM {table}\nWHERE {time_column} >= :period_start AND {time_column} < :period_end{filter}\nGROUP BY period{dimensions}"
            )
        }
        MetricKind::Conversion { view, .. } => {
            let name = view.trim_start_matches("reporting.");
            let sql = registry
                .views
                .iter()
                .find(|v| v.name == name)
                .map(|v| v.sql.clone())
                .unwrap_or_default();
            format!("-- {view}: one row per entity\n{sql};\n\nSELECT <period of __at> AS period, AVG(__converted) AS value\nFROM {view}\nWHERE __at >= :period_start AND __at < :period_end\nGROUP BY period")
        }
        MetricKind::Ratio {
            numerator,
            denominator,
        } => {
            format!("-- sum(numerator) / sum(denominator) per period and dimension value\n{numerator} / {denominator}")
        }
        MetricKind::Derived { expression, .. } => {
            format!("-- evaluated per period on the parts' values\n{expression}")
        }
        MetricKind::Cumulative { of, window } => {
            format!("-- sum of {of} from the start of the {window} (or of the data, for running) to the end of the period\nSUM({of}) OVER ({window} to date)")
        }
    }
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
    fn values_are_formatted_for_people() {
        assert_eq!(
            format_value(Unit::Currency, Some(1234567.5)),
            "1,234,567.50"
        );
        assert_eq!(format_value(Unit::Currency, Some(-12.345)), "-12.35");
        assert_eq!(format_value(Unit::Count, Some(1234.0)), "1,234");
        assert_eq!(format_value(Unit::Count, Some(12.0)), "12");
        assert_eq!(format_value(Unit::Percent, Some(0.0345)), "3.5%");
        assert_eq!(format_value(Unit::Count, None), "—");
    }

    #[test]
    fn comparisons_parse() {
        assert_eq!(
            parse_comparisons("previous, year_ago,previous").expect("ok"),
            vec![Comparison::Previous, Comparison::YearAgo]
        );
        assert_eq!(parse_comparisons("").expect("ok"), Vec::<Comparison>::new());
        assert_eq!(
            parse_comparisons("last").expect_err("bad").code,
            "bad_comparison"
        );
    }
}
