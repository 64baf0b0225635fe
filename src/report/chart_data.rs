//! Chart data: the points of trend, breakdown and funnel charts, from tiles and values the
//! builder already has. Pure: no queries, no drawing (drawing is `charts.rs`).

use super::model::{ChartData, ChartPoint, FunnelStep, Tile};
use crate::defs::{Chart, ChartType, Metric, Unit};
use crate::metrics;

/// The note of a trend point whose conversion cohort is still maturing (drawn hollow).
pub const MATURING_NOTE: &str = "cohort still maturing";

/// One metric over the tile's trend weeks, with the target in force each week.
pub fn trend(chart: &Chart, tile: &Tile, definition: Option<&Metric>) -> ChartData {
    ChartData {
        name: chart.name.clone(),
        title: chart.title.clone(),
        kind: ChartType::Trend,
        unit: tile.unit,
        by: None,
        points: tile
            .sparkline
            .iter()
            .map(|(period, value)| ChartPoint {
                label: period.clone(),
                value: *value,
                target: definition.and_then(|m| metrics::target_for(m, period)),
                metric: tile.metric.clone(),
                period: period.clone(),
                unit: tile.unit,
                note: tile
                    .maturing_weeks
                    .contains(period)
                    .then(|| MATURING_NOTE.to_string()),
                attribution: tile.attribution.clone(),
            })
            .collect(),
    }
}

/// One metric in the week by a dimension: largest value first, ties by label.
pub fn breakdown(
    chart: &Chart,
    tile: &Tile,
    by: &str,
    week: &str,
    values: Vec<(String, Option<f64>)>,
) -> ChartData {
    let mut points: Vec<ChartPoint> = values
        .into_iter()
        .map(|(label, value)| ChartPoint {
            label,
            value,
            target: None,
            metric: tile.metric.clone(),
            period: week.to_string(),
            unit: tile.unit,
            note: None,
            attribution: tile.attribution.clone(),
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
        unit: tile.unit,
        by: Some(by.to_string()),
        points,
    }
}

/// Metrics in funnel order, each with its ratio to the step before; also the funnel rows.
pub fn funnel(chart: &Chart, steps: &[&Tile], week: &str) -> (ChartData, Vec<FunnelStep>) {
    let mut rows = Vec::new();
    let mut points = Vec::new();
    let mut previous: Option<&Tile> = None;
    for tile in steps {
        let ratio = match (previous.and_then(|p| p.value), tile.value) {
            (Some(p), Some(v)) if p != 0.0 => Some(v / p),
            _ => None,
        };
        let rate = ratio.zip(previous).map(|(r, p)| step_text(r, p, tile));
        rows.push(FunnelStep {
            metric: tile.metric.clone(),
            label: tile.label.clone(),
            unit: tile.unit,
            currency: tile.currency.clone(),
            scope: tile.sources.clone(),
            value: tile.value,
            ratio_to_previous: ratio,
            rate: rate.clone(),
        });
        points.push(ChartPoint {
            label: tile.label.clone(),
            value: tile.value,
            target: None,
            metric: tile.metric.clone(),
            period: week.to_string(),
            unit: tile.unit,
            note: rate,
            attribution: tile.attribution.clone(),
        });
        previous = Some(tile);
    }
    let data = ChartData {
        name: chart.name.clone(),
        title: chart.title.clone(),
        kind: ChartType::Funnel,
        unit: Unit::Count,
        by: None,
        points,
    };
    (data, rows)
}

/// A funnel step's rate in words: a percentage between counts when the step is at most the
/// one before (a conversion rate), else a value per unit of the step before (clicks per $ of
/// spend, $ of pipeline per SQL, sessions per ad click: steps counted in different scopes can
/// exceed 100%, which is no conversion rate).
pub fn step_text(ratio: f64, previous: &Tile, step: &Tile) -> String {
    match (previous.unit, step.unit) {
        (Unit::Count, Unit::Count) if ratio <= 1.0 => format!("{:.1}%", ratio * 100.0),
        (Unit::Count, Unit::Count) => format!(
            "{ratio:.2} per {}",
            singular(&previous.label).to_lowercase()
        ),
        (Unit::Currency, _) => {
            // "0.24 per $": the previous step's currency unit, as a symbol or a code.
            let one = metrics::format_display(
                Unit::Currency,
                previous.currency.as_deref(),
                Some(1.0),
                false,
            );
            let unit = one.trim_end_matches("1.00").trim();
            let unit = if unit.is_empty() {
                "unit of spend"
            } else {
                unit
            };
            format!("{ratio:.2} per {unit}")
        }
        _ => format!(
            "{} per {}",
            metrics::format_display(step.unit, step.currency.as_deref(), Some(ratio), false),
            singular(&previous.label)
        ),
    }
}

/// A plural label made singular for "per ..." (`Ad clicks` → `Ad click`).
fn singular(label: &str) -> &str {
    label.strip_suffix('s').unwrap_or(label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tiles::tests::tile;

    fn chart(kind: crate::defs::ChartKind) -> Chart {
        Chart {
            name: "c".into(),
            title: "C".into(),
            kind,
        }
    }

    #[test]
    fn funnel_rates_compare_each_step_with_the_one_before() {
        let mut spend = tile("spend", Unit::Currency, Some(1000.0));
        spend.currency = Some("USD".into());
        let clicks = tile("clicks", Unit::Count, Some(350.0));
        let mqls = tile("mqls", Unit::Count, Some(14.0));
        let sessions = tile("Sessions", Unit::Count, Some(21.0));
        let mut pipeline = tile("pipeline", Unit::Currency, Some(70_000.0));
        pipeline.currency = Some("USD".into());
        let zero = tile("sqls", Unit::Count, Some(0.0));
        let after_zero = tile("won", Unit::Count, Some(3.0));
        let (data, rows) = funnel(
            &chart(crate::defs::ChartKind::Funnel {
                metrics: Vec::new(),
            }),
            &[
                &spend,
                &clicks,
                &mqls,
                &sessions,
                &pipeline,
                &zero,
                &after_zero,
            ],
            "2026-W45",
        );
        let rates: Vec<Option<&str>> = rows.iter().map(|r| r.rate.as_deref()).collect();
        assert_eq!(
            rates,
            vec![
                None,
                Some("0.35 per $"),
                Some("4.0%"),
                Some("1.50 per mql"), // more sessions than MQLs: no conversion rate
                Some("$3,333.33 per Session"),
                Some("0.00 per $"),
                None, // the step before is zero: no ratio
            ]
        );
        assert_eq!(rows[2].ratio_to_previous, Some(0.04));
        assert_eq!(data.points.len(), 7);
        assert_eq!(data.points[1].note.as_deref(), Some("0.35 per $"));
        assert!(data.points.iter().all(|p| p.period == "2026-W45"));
    }

    #[test]
    fn a_missing_step_value_breaks_the_ratio_on_both_sides() {
        let a = tile("a", Unit::Count, Some(10.0));
        let b = tile("b", Unit::Count, None);
        let c = tile("c", Unit::Count, Some(5.0));
        let (_, rows) = funnel(
            &chart(crate::defs::ChartKind::Funnel {
                metrics: Vec::new(),
            }),
            &[&a, &b, &c],
            "2026-W45",
        );
        assert!(rows.iter().all(|r| r.ratio_to_previous.is_none()));
    }

    #[test]
    fn breakdown_points_are_largest_first_then_by_label() {
        let spend = tile("spend", Unit::Currency, Some(10.0));
        let data = breakdown(
            &chart(crate::defs::ChartKind::Breakdown {
                metric: "spend".into(),
                by: "channel".into(),
            }),
            &spend,
            "channel",
            "2026-W45",
            vec![
                ("b".into(), Some(5.0)),
                ("a".into(), Some(5.0)),
                ("c".into(), Some(9.0)),
                ("d".into(), None),
            ],
        );
        let labels: Vec<&str> = data.points.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, vec!["c", "a", "b", "d"]);
        assert_eq!(data.by.as_deref(), Some("channel"));
    }
}
