//! Metric series as text: flags and URL values parsed into requests, series written as CSV
//! and tables, values formatted for people, and the SQL a metric runs described.

use super::{Comparison, Series};
use crate::defs::{Metric, MetricKind, Registry, Unit};
use crate::error::{Error, Result};
use crate::time::{Calendar, Grain, Period};

/// Parses a comma-separated list of comparisons from a flag or URL (`bad_comparison`).
pub fn parse_comparisons(text: &str) -> Result<Vec<Comparison>> {
    Comparison::parse_list(text).map_err(|message| Error::input("bad_comparison", message))
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

/// Formats a value for a reader, with the currency's symbol on money (`$487,710.00`; a code
/// without a well-known symbol is written before the amount: `CHF 12.00`). `compact` shortens
/// money of a thousand or more where a reader scans (tiles, sentences: `$487.7K`, `$1.4M`);
/// tables keep the full amount.
pub fn format_display(
    unit: Unit,
    currency: Option<&str>,
    value: Option<f64>,
    compact: bool,
) -> String {
    let Some(value) = value else {
        return "—".to_string();
    };
    if unit != Unit::Currency {
        return format_value(unit, Some(value));
    }
    let symbol = match currency {
        Some("USD") => "$".to_string(),
        None => String::new(),
        Some("EUR") => "€".to_string(),
        Some("GBP") => "£".to_string(),
        Some("JPY") => "¥".to_string(),
        Some(code) => format!("{code} "),
    };
    let sign = if value < 0.0 { "-" } else { "" };
    let magnitude = value.abs();
    let amount = match [(1e9, "B"), (1e6, "M"), (1e3, "K")]
        .into_iter()
        .find(|(scale, _)| compact && magnitude >= *scale)
    {
        // 999,950 rounds to 1000.0K: say 1.0M instead.
        Some((scale, suffix))
            if (magnitude / scale * 10.0).round() >= 10_000.0 && suffix != "B" =>
        {
            let (bigger, next) = if suffix == "K" {
                (1e6, "M")
            } else {
                (1e9, "B")
            };
            format!("{:.1}{next}", magnitude / bigger)
        }
        Some((scale, suffix)) => format!("{:.1}{suffix}", magnitude / scale),
        None => group_thousands(&format!("{magnitude:.2}")),
    };
    format!("{sign}{symbol}{amount}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_its_symbol_and_compact_form_where_readers_scan() {
        let usd = Some("USD");
        assert_eq!(
            format_display(Unit::Currency, usd, Some(487_710.0), false),
            "$487,710.00"
        );
        assert_eq!(
            format_display(Unit::Currency, usd, Some(487_710.0), true),
            "$487.7K"
        );
        assert_eq!(
            format_display(Unit::Currency, usd, Some(1_404_670.0), true),
            "$1.4M"
        );
        assert_eq!(
            format_display(Unit::Currency, usd, Some(999_960.0), true),
            "$1.0M"
        );
        assert_eq!(
            format_display(Unit::Currency, usd, Some(196.17), true),
            "$196.17"
        );
        assert_eq!(
            format_display(Unit::Currency, usd, Some(-2_500.0), true),
            "-$2.5K"
        );
        assert_eq!(
            format_display(Unit::Currency, Some("EUR"), Some(12.0), false),
            "€12.00"
        );
        assert_eq!(
            format_display(Unit::Currency, Some("CHF"), Some(12.0), false),
            "CHF 12.00"
        );
        assert_eq!(format_display(Unit::Currency, usd, None, true), "—");
        assert_eq!(
            format_display(Unit::Currency, None, Some(12.0), true),
            "12.00",
            "no code, no symbol"
        );
        assert_eq!(format_display(Unit::Count, usd, Some(48.0), true), "48");
    }

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
