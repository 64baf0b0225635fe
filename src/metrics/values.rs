//! A metric's values for a set of periods and dimension combinations: simple and conversion
//! metrics aggregate in the engine; ratio, derived and cumulative metrics combine their parts'
//! values (pure functions at the bottom).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;

use chrono::NaiveDate;

use super::{Key, MetricService, Values};
use crate::attribution::Settings;
use crate::defs::expression::Expression;
use crate::defs::{Metric, MetricKind};
use crate::engine::aggregate::{AggregateQuery, Bucket};
use crate::error::Result;
use crate::time::Period;

impl MetricService<'_> {
    /// Returns the metric's values for every period (by index) and dimension combination.
    pub(super) fn values<'s>(
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
                    Ok(divide(&numerator, &denominator))
                }
                MetricKind::Derived { parsed, .. } => {
                    let mut parts = HashMap::new();
                    for part in parsed.metrics() {
                        let values = self
                            .values(self.metric(&part)?, periods, by, filters, settings)
                            .await?;
                        parts.insert(part, values);
                    }
                    Ok(evaluate(parsed, &parts))
                }
                MetricKind::Cumulative { of, window } => {
                    let windows: Vec<(NaiveDate, NaiveDate)> = periods
                        .iter()
                        .map(|period| (self.window_start(*window, period.last_day()), period.end))
                        .collect();
                    let atoms = atoms(&windows);
                    // Atoms are arbitrary day ranges; only their bounds are used.
                    let atom_periods: Vec<Period> = atoms
                        .iter()
                        .map(|(start, end)| Period {
                            start: *start,
                            end: *end,
                            grain: 0,
                        })
                        .collect();
                    let atom_values = self
                        .values(self.metric(of)?, &atom_periods, by, filters, settings)
                        .await?;
                    Ok(accumulate(&windows, &atoms, &atom_values))
                }
            }
        })
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

/// A ratio per key: the numerator (0 when missing) over a non-zero denominator.
fn divide(numerator: &Values, denominator: &Values) -> Values {
    denominator
        .iter()
        .filter(|(_, den)| **den != 0.0)
        .map(|(key, den)| {
            (
                key.clone(),
                numerator.get(key).copied().unwrap_or(0.0) / den,
            )
        })
        .collect()
}

/// A derived metric per key where any part has a value. A part missing for a key is missing
/// to the expression: it counts as 0 beside `+` and `-` and leaves no value beside `*` and `/`
/// (cost per MQL has no value, not 0, in a channel without spend).
fn evaluate(expression: &Expression, parts: &HashMap<String, Values>) -> Values {
    let keys: BTreeSet<Key> = parts
        .values()
        .flat_map(|values| values.keys().cloned())
        .collect();
    keys.into_iter()
        .filter_map(|key| {
            let inputs = parts
                .iter()
                .map(|(name, values)| (name.clone(), values.get(&key).copied()))
                .collect();
            expression.evaluate(&inputs).map(|value| (key, value))
        })
        .collect()
}

/// Splits time at every window boundary into non-overlapping day ranges ("atoms"), so each
/// window is the sum of the atoms it covers.
fn atoms(windows: &[(NaiveDate, NaiveDate)]) -> Vec<(NaiveDate, NaiveDate)> {
    let boundaries: BTreeSet<NaiveDate> = windows.iter().flat_map(|(s, e)| [*s, *e]).collect();
    let boundaries: Vec<NaiveDate> = boundaries.into_iter().collect();
    boundaries.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Each window's total per dimension combination, from the atoms' values.
fn accumulate(
    windows: &[(NaiveDate, NaiveDate)],
    atoms: &[(NaiveDate, NaiveDate)],
    atom_values: &Values,
) -> Values {
    let mut out = Values::new();
    for (index, (start, end)) in windows.iter().enumerate() {
        let mut sums: HashMap<Vec<Option<String>>, f64> = HashMap::new();
        for ((atom, dims), value) in atom_values {
            let (atom_start, atom_end) = atoms[*atom];
            if atom_start >= *start && atom_end <= *end {
                *sums.entry(dims.clone()).or_default() += value;
            }
        }
        for (dims, sum) in sums {
            out.insert((index, dims), sum);
        }
    }
    out
}
