//! Tracking conventions counted on the landed data: for each rule of `[conventions]`, the rows
//! of a week (or of all the data, for `kpi check`) that break it, what they carry (sessions,
//! spend) and the most frequent offending values. Reads the engine through the same aggregate
//! every metric uses (so the rollup store keeps the counts); writes no sentence except the
//! finding text of a breaking rule.

use std::collections::BTreeMap;

use super::model::ConventionCount;
use crate::config::conventions::Rule;
use crate::engine::aggregate::{AggregateQuery, Bucket};
use crate::engine::Engine;
use crate::time::{Calendar, Period};

/// How many offending values a count lists.
const TOP_VALUES: usize = 3;

/// Counts every rule's breaking rows in `period` (all the data when `None`).
pub async fn count_conventions(
    engine: &Engine,
    calendar: &Calendar,
    rules: &[Rule],
    period: Option<Period>,
) -> Vec<ConventionCount> {
    let bucket = match period {
        Some(period) => {
            let (start, end) = calendar.instants(period);
            Bucket {
                start_day: period.start,
                end_day: period.end,
                start,
                end,
            }
        }
        None => everything(),
    };
    // Every rule's counts at once: each is a small query, and in a row they would wait on each
    // other (the order of the answer is the rules' order).
    futures::future::join_all(rules.iter().map(|rule| count_rule(engine, rule, bucket))).await
}

async fn count_rule(engine: &Engine, rule: &Rule, bucket: Bucket) -> ConventionCount {
    let query = |measure: &str| AggregateQuery {
        table: rule.table.clone(),
        measure: measure.to_string(),
        filter: Some(rule.breaks.clone()),
        time_column: rule.time_column.clone(),
        buckets: vec![bucket],
        dimensions: rule.column.iter().cloned().collect(),
        equals: Vec::new(),
        attribution: None,
    };
    let mut count = ConventionCount {
        rule: rule.description.clone(),
        table: rule.table.clone(),
        rows: None,
        carries: rule.carries.0.to_string(),
        carried: None,
        top: Vec::new(),
        error: None,
    };
    let (rows, carried) = match futures::future::try_join(
        engine.aggregate(&query("COUNT(*)")),
        engine.aggregate(&query(rule.carries.1)),
    )
    .await
    {
        Ok(both) => both,
        Err(error) => {
            count.error = Some(error.message);
            return count;
        }
    };
    let mut by_value: BTreeMap<String, i64> = BTreeMap::new();
    for row in &rows {
        let value = match &rule.column {
            Some(_) => row
                .dimensions
                .first()
                .cloned()
                .flatten()
                .unwrap_or_default(),
            None => "(missing)".to_string(),
        };
        *by_value.entry(value).or_default() += row.value.unwrap_or(0.0) as i64;
    }
    count.rows = Some(by_value.values().sum());
    // `+ 0.0`: an empty sum is -0.0, which would print as "-0".
    count.carried = Some(carried.iter().filter_map(|row| row.value).sum::<f64>() + 0.0);
    let mut top: Vec<(String, i64)> = by_value.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(TOP_VALUES);
    count.top = top;
    count
}

/// One bucket holding every row (1970 to 2200).
fn everything() -> Bucket {
    let day = |y| chrono::NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or_default();
    let instant = |y| day(y).and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    Bucket {
        start_day: day(1970),
        end_day: day(2200),
        start: instant(1970),
        end: instant(2200),
    }
}

/// The data-health finding of a rule broken in the week, or of a count that failed.
pub fn finding(count: &ConventionCount) -> Option<String> {
    let unit = if count.carries == "spend" {
        crate::defs::Unit::Currency
    } else {
        crate::defs::Unit::Count
    };
    if let Some(error) = &count.error {
        return Some(format!(
            "Tracking convention \u{201c}{}\u{201d} cannot be checked on {}: {error}",
            count.rule, count.table
        ));
    }
    let rows = count.rows.filter(|rows| *rows > 0)?;
    let values = count
        .top
        .iter()
        .filter(|(value, _)| value != "(missing)")
        .map(|(value, rows)| {
            format!(
                "{value} ({})",
                crate::metrics::format_value(crate::defs::Unit::Count, Some(*rows as f64))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let values = if values.is_empty() {
        String::new()
    } else {
        format!("; most frequent: {values}")
    };
    Some(format!(
        "Tracking convention \u{201c}{}\u{201d}: {} {} of {} break it, carrying {} {}{values}.",
        count.rule,
        crate::metrics::format_value(crate::defs::Unit::Count, Some(rows as f64)),
        if rows == 1 { "row" } else { "rows" },
        count.table,
        crate::metrics::format_value(unit, count.carried),
        count.carries,
    ))
}
