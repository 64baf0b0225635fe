//! Exports of a report: every number as CSV (`section,metric,period,dimension,model,value`).
//! The JSON export is the report model itself (serde).

use super::model::Report;
use crate::defs::ChartType;
use crate::render::csv::{number, CsvText};

/// Every number of a report as CSV: `section,metric,period,dimension,model,value`.
pub fn to_csv(report: &Report) -> String {
    let mut text = CsvText::new(["section", "metric", "period", "dimension", "model", "value"]);
    let mut row = |section: &str,
                   metric: &str,
                   period: &str,
                   dimension: &str,
                   model: &str,
                   value: Option<f64>| {
        text.row([section, metric, period, dimension, model, &number(value)]);
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
    text.finish()
}
