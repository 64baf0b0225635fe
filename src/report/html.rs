//! The report page: one self-contained HTML document (inline CSS and SVG, no script, no
//! external request) that reads without JavaScript and prints on A4 or Letter.
//!
//! Every number carries `data-metric`, `data-period` and `data-value` (the raw value, as the
//! API gives it); attributed numbers also `data-model` and `data-lookback`, sliced numbers
//! `data-dimension` and `data-dimension-value`. Changes carry `data-change` instead (they are
//! not metric values).

use super::charts;
use super::{ChartData, Report, SentenceKind, TargetStatus, Tile};
use crate::defs::{ChartType, Good, Unit};
use crate::metrics::format_value;

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font-family:'DejaVu Sans',system-ui,-apple-system,'Segoe UI',sans-serif;max-width:76rem;margin:1.5rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.4}\
h1{margin:.2rem 0}h2{margin-top:2rem;border-bottom:2px solid #1b3a6b;padding-bottom:.2rem}\
a{color:#0b57d0}.muted{color:#5f5f5f}.small{font-size:.85em}\
header dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.6rem 0}dt{font-weight:600}dd{margin:0}\
.banner{border:2px solid #b3261e;background:#fdecea;padding:.5rem .8rem;margin:.5rem 0;font-weight:600}\
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:.8rem}\
.tile{border:1px solid #c8c8c8;border-radius:6px;padding:.7rem;break-inside:avoid}\
.tile.primary{border:2px solid #1b3a6b}\
.tile .label{font-weight:600}.tile .value{font-size:1.7rem;font-weight:700;font-variant-numeric:tabular-nums}\
.tile.unavailable{background:#f3f3f3;border-style:dashed}.reason{color:#b3261e}\
.up{color:#146c2e}.down{color:#b3261e}.flat{color:#5f5f5f}\
table{border-collapse:collapse;width:100%;margin:.4rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f1f3f6}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}tfoot td,tfoot th{font-weight:700;border-top:2px solid #999}\
figure{margin:0;break-inside:avoid}figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#5f5f5f}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(30rem,1fr));gap:1rem}\
ul.summary li{margin:.2rem 0}\
@page{size:A4;margin:12mm}\
@media print{body{max-width:none;margin:0;font-size:10pt}nav{display:none}a{color:inherit;text-decoration:none}\
.charts{grid-template-columns:1fr 1fr}h2{break-after:avoid}details{display:block}details>summary{display:none}}";

fn number(
    metric: &str,
    period: &str,
    unit: Unit,
    value: Option<f64>,
    extra: &str,
    class: &str,
) -> String {
    format!(
        "<span class=\"{class}\" data-metric=\"{}\" data-period=\"{}\" data-value=\"{}\"{extra}>{}</span>",
        escape(metric),
        escape(period),
        value.map(|v| v.to_string()).unwrap_or_default(),
        format_value(unit, value)
    )
}

fn attribution_attrs(tile: &Tile) -> String {
    tile.attribution
        .as_ref()
        .map(|a| {
            format!(
                " data-model=\"{}\" data-lookback=\"{}\"",
                escape(&a.model),
                escape(&a.lookback)
            )
        })
        .unwrap_or_default()
}

fn change(tile: &Tile, name: &str, words: &str) -> String {
    let Some(c) = tile.comparisons.get(name) else {
        return String::new();
    };
    let class = match c.change_ratio {
        Some(r) if r.abs() < 1e-12 => "flat",
        Some(r) if (r > 0.0) == (tile.good != Good::Down) && tile.good != Good::Neutral => "up",
        Some(_) if tile.good == Good::Neutral => "flat",
        Some(_) => "down",
        None => "flat",
    };
    let ratio = c
        .change_ratio
        .map(|r| format!("{:+.1}%", r * 100.0))
        .unwrap_or_else(|| "—".into());
    format!(
        "<div class=\"small\"><span class=\"{class}\" data-change=\"{}\">{ratio}</span> {words} ({})</div>",
        c.change_ratio.map(|r| r.to_string()).unwrap_or_default(),
        number(&tile.metric, &c.period, tile.unit, c.value, &attribution_attrs(tile), "muted")
    )
}

fn tile_html(tile: &Tile, week: &str, primary: bool) -> String {
    let classes = format!(
        "tile{}{}",
        if primary { " primary" } else { "" },
        if tile.value.is_none() {
            " unavailable"
        } else {
            ""
        }
    );
    let attrs = attribution_attrs(tile);
    let mut out = format!(
        "<div class=\"{classes}\" id=\"kpi-{name}\"><div class=\"label\"><a href=\"/definitions/{name}\">{label}</a></div>",
        name = escape(&tile.metric),
        label = escape(&tile.label)
    );
    if let Some(reason) = &tile.unavailable {
        out.push_str(&format!(
            "<div class=\"value\">—</div><div class=\"reason\" data-unavailable=\"{}\">Unavailable: {}</div>",
            escape(&tile.metric),
            escape(&reason.to_string())
        ));
    } else {
        out.push_str(&format!(
            "<div class=\"value\">{}</div>",
            number(&tile.metric, week, tile.unit, tile.value, &attrs, "")
        ));
    }
    out.push_str(&change(tile, "previous", "vs previous week"));
    out.push_str(&change(tile, "year_ago", "vs a year ago"));
    out.push_str(&change(tile, "trailing_4", "vs 4-week average"));
    if let Some(target) = tile.target {
        let status = match tile.target_status {
            Some(TargetStatus::Ahead) => "<span class=\"up\">ahead of target</span>",
            Some(TargetStatus::Behind) => "<span class=\"down\">behind target</span>",
            Some(TargetStatus::OnTrack) => "<span class=\"flat\">on track</span>",
            None => "",
        };
        out.push_str(&format!(
            "<div class=\"small\">Target {} {status}</div>",
            format_value(tile.unit, Some(target))
        ));
    }
    if let Some(a) = &tile.attribution {
        out.push_str(&format!(
            "<div class=\"small muted\">Attribution: {}</div>",
            escape(&a.label)
        ));
    }
    for change in &tile.definition_changes {
        out.push_str(&format!(
            "<div class=\"small reason\" data-definition-change=\"{}\">Definition changed in these weeks: {}</div>",
            escape(&tile.metric),
            escape(change)
        ));
    }
    if !tile.sparkline.is_empty() {
        let values: Vec<Option<f64>> = tile.sparkline.iter().map(|(_, v)| *v).collect();
        if let Ok(svg) = charts::sparkline(&values) {
            let first = tile
                .sparkline
                .first()
                .map(|(p, _)| p.as_str())
                .unwrap_or("");
            out.push_str(&format!(
                "<div role=\"img\" aria-label=\"{} weeks from {first} to {week}\">{svg}</div>",
                tile.sparkline.len(),
            ));
        }
    }
    out.push_str("</div>");
    out
}

fn chart_html(report: &Report, chart: &ChartData) -> String {
    let svg =
        charts::svg(chart).unwrap_or_else(|e| format!("<p class=\"reason\">{}</p>", escape(&e)));
    let mut rows = String::new();
    for p in &chart.points {
        let mut dimension = match (&chart.by, chart.kind) {
            (Some(by), ChartType::Breakdown) => format!(
                " data-dimension=\"{}\" data-dimension-value=\"{}\"",
                escape(by),
                escape(&p.label)
            ),
            _ => String::new(),
        };
        if let Some(a) = &p.attribution {
            dimension.push_str(&format!(
                " data-model=\"{}\" data-lookback=\"{}\"",
                escape(&a.model),
                escape(&a.lookback)
            ));
        }
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td>{}</tr>",
            escape(&p.label),
            number(&p.metric, &p.period, p.unit, p.value, &dimension, ""),
            match p.target {
                Some(t) => format!(
                    "<td class=\"num\">target {}</td>",
                    format_value(p.unit, Some(t))
                ),
                None => String::from("<td></td>"),
            }
        ));
    }
    format!(
        "<figure id=\"chart-{name}\">{svg}<figcaption>{title} · <a href=\"/charts/{dashboard}/{week}/{name}.png\">PNG</a> · <a href=\"/charts/{dashboard}/{week}/{name}.svg\">SVG</a>\
<details><summary>Data</summary><table class=\"small\"><tbody>{rows}</tbody></table></details></figcaption></figure>",
        name = escape(&chart.name),
        title = escape(&chart.title),
        dashboard = escape(&report.dashboard),
        week = escape(&report.week),
    )
}

/// Renders the report page.
pub fn render(report: &Report) -> String {
    let mut body = String::new();
    let freshness: Vec<String> = report
        .freshness
        .iter()
        .map(|f| {
            format!(
                "<code>{}</code> data to {}{}",
                escape(&f.source),
                f.latest
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "—".into()),
                if f.covers_week {
                    ""
                } else {
                    " (stale for this week)"
                }
            )
        })
        .collect();
    body.push_str(&format!(
        "<header><p class=\"muted\"><a href=\"/\">Reports</a> · {audience}</p><h1>{title} — {week}</h1><p>{description}</p>\
<dl><dt>Week</dt><dd>{start} to {end} ({tz})</dd>\
<dt>Attribution</dt><dd data-model=\"{model}\" data-lookback=\"{lookback}\">{attribution} (<a href=\"/attribution\">rules</a>)</dd>\
<dt>Definitions</dt><dd><code>{version}</code> (<a href=\"/definitions\">catalog</a>)</dd>\
<dt>Data freshness</dt><dd>{freshness}</dd>\
<dt>Status</dt><dd>{status}</dd></dl>",
        audience = escape(&report.audience),
        title = escape(&report.title),
        week = escape(&report.week),
        description = escape(&report.description),
        start = report.start,
        end = report.end,
        tz = escape(&report.time_zone),
        model = escape(&report.attribution.model),
        lookback = escape(&report.attribution.lookback),
        attribution = escape(&report.attribution.label),
        version = escape(&report.definitions_version),
        freshness = freshness.join("; "),
        status = if report.complete { "complete week" } else { "<strong>incomplete week</strong>" },
    ));
    for banner in &report.banners {
        body.push_str(&format!(
            "<div class=\"banner\" role=\"alert\">{}</div>",
            escape(banner)
        ));
    }
    body.push_str("</header>");

    // Summary.
    body.push_str("<section id=\"summary\"><h2>Summary</h2>");
    for (kind, heading) in [
        (SentenceKind::Changed, "What changed"),
        (SentenceKind::Improved, "What improved"),
        (SentenceKind::FollowUp, "Needs follow-up"),
    ] {
        let items: Vec<String> = report
            .summary
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| match &s.metric {
                Some(m) => format!(
                    "<li><a href=\"#kpi-{}\">{}</a></li>",
                    escape(m),
                    escape(&s.text)
                ),
                None => format!("<li>{}</li>", escape(&s.text)),
            })
            .collect();
        let list = if items.is_empty() {
            "<li class=\"muted\">Nothing beyond the thresholds.</li>".to_string()
        } else {
            items.join("")
        };
        body.push_str(&format!(
            "<h3>{heading}</h3><ul class=\"summary\">{list}</ul>"
        ));
    }
    body.push_str("</section>");

    // Tiles.
    body.push_str("<section id=\"kpis\"><h2>Headline KPIs</h2><div class=\"tiles\">");
    for tile in &report.primary {
        body.push_str(&tile_html(tile, &report.week, true));
    }
    body.push_str("</div>");
    for section in &report.sections {
        body.push_str(&format!(
            "<h3>{}</h3><div class=\"tiles\">",
            escape(&section.title)
        ));
        for tile in &section.tiles {
            body.push_str(&tile_html(tile, &report.week, false));
        }
        body.push_str("</div>");
    }
    body.push_str("</section>");

    // Charts.
    if !report.charts.is_empty() {
        body.push_str("<section id=\"charts\"><h2>Charts</h2><div class=\"charts\">");
        for chart in &report.charts {
            body.push_str(&chart_html(report, chart));
        }
        body.push_str("</div></section>");
    }

    // Funnel.
    if !report.funnel.is_empty() {
        let rows: String = report
            .funnel
            .iter()
            .map(|s| {
                format!(
                    "<tr><td><a href=\"#kpi-{m}\">{label}</a></td><td class=\"num\">{value}</td><td class=\"num\" data-ratio=\"{raw}\">{ratio}</td></tr>",
                    m = escape(&s.metric),
                    label = escape(&s.label),
                    value = number(&s.metric, &report.week, s.unit, s.value, "", ""),
                    raw = s.ratio_to_previous.map(|r| r.to_string()).unwrap_or_default(),
                    ratio = s.rate.as_deref().map(escape).unwrap_or_else(|| "—".into()),
                )
            })
            .collect();
        body.push_str(&format!(
            "<section id=\"funnel\"><h2>Funnel</h2><table><thead><tr><th>Step</th><th class=\"num\">{week}</th><th class=\"num\">Step rate (against the step before)</th></tr></thead><tbody>{rows}</tbody></table></section>",
            week = escape(&report.week)
        ));
    }

    // Breakdown.
    if let Some(b) = &report.breakdown {
        let header: String = b
            .columns
            .iter()
            .map(|c| {
                format!(
                    "<th class=\"num\"><a href=\"/definitions/{}\">{}</a></th>",
                    escape(&c.metric),
                    escape(&c.label)
                )
            })
            .collect();
        let errors: String = b
            .errors
            .iter()
            .zip(&b.columns)
            .filter_map(|(e, c)| {
                e.as_ref().map(|e| {
                    format!(
                        "<p class=\"reason\">{}: unavailable: {}</p>",
                        escape(&c.label),
                        escape(e)
                    )
                })
            })
            .collect();
        let rows: String = b
            .rows
            .iter()
            .map(|(value, values)| {
                let cells: String = b
                    .columns
                    .iter()
                    .zip(values)
                    .map(|(column, v)| {
                        let attribution = column
                            .attribution
                            .as_ref()
                            .map(|a| {
                                format!(
                                    " data-model=\"{}\" data-lookback=\"{}\"",
                                    escape(&a.model),
                                    escape(&a.lookback)
                                )
                            })
                            .unwrap_or_default();
                        let extra = format!(
                            " data-dimension=\"{}\" data-dimension-value=\"{}\"{attribution}",
                            escape(&b.by),
                            escape(value)
                        );
                        format!(
                            "<td class=\"num\">{}</td>",
                            number(&column.metric, &report.week, column.unit, *v, &extra, "")
                        )
                    })
                    .collect();
                format!("<tr><th>{}</th>{cells}</tr>", escape(value))
            })
            .collect();
        body.push_str(&format!(
            "<section id=\"breakdown\"><h2>By {by}</h2>{errors}<table><thead><tr><th>{by}</th>{header}</tr></thead><tbody>{rows}</tbody></table>\
<p class=\"small muted\">Each metric is sliced by its own <code>{by}</code> column; attributed metrics by the channel of the touches credited ({attribution}).</p></section>",
            by = escape(&b.by),
            attribution = escape(&report.attribution.label),
        ));
    }

    // Attribution comparison.
    if let Some(c) = &report.attribution_comparison {
        let header: String = c
            .models
            .iter()
            .map(|m| {
                format!(
                    "<th class=\"num\"><a href=\"/attribution#model-{0}\">{0}</a></th>",
                    escape(m)
                )
            })
            .collect();
        let cell = |model: &str, channel: &str, v: Option<f64>| {
            number(
                &c.metric,
                &report.week,
                c.unit,
                v,
                &format!(
                    " data-model=\"{}\" data-lookback=\"{}\" data-dimension=\"channel\" data-dimension-value=\"{}\"",
                    escape(model),
                    escape(&c.lookback),
                    escape(channel)
                ),
                "",
            )
        };
        let rows: String = c
            .rows
            .iter()
            .map(|(channel, values)| {
                let cells: String = c
                    .models
                    .iter()
                    .zip(values)
                    .map(|(m, v)| format!("<td class=\"num\">{}</td>", cell(m, channel, *v)))
                    .collect();
                format!("<tr><th>{}</th>{cells}</tr>", escape(channel))
            })
            .collect();
        let totals: String = c
            .totals
            .iter()
            .map(|v| {
                format!(
                    "<td class=\"num\" data-total=\"{}\">{}</td>",
                    v.map(|v| v.to_string()).unwrap_or_default(),
                    format_value(c.unit, *v)
                )
            })
            .collect();
        body.push_str(&format!(
            "<section id=\"attribution\"><h2>{label} under every attribution model</h2>\
<p class=\"small\">{week}, {lookback} lookback. Models move credit between channels; every column has the same total. This report's own numbers use {used}. <a href=\"/attribution\">How each model works</a>.</p>\
<table><thead><tr><th>Channel</th>{header}</tr></thead><tbody>{rows}</tbody><tfoot><tr><th>Total</th>{totals}</tr></tfoot></table></section>",
            label = escape(&c.label),
            week = escape(&report.week),
            lookback = escape(&c.lookback),
            used = escape(&report.attribution.label),
        ));
    }

    // Data health.
    body.push_str("<section id=\"health\"><h2>Data health</h2>");
    if report.health.findings.is_empty() {
        body.push_str("<p>No finding.</p>");
    } else {
        let items: String = report
            .health
            .findings
            .iter()
            .map(|f| format!("<li>{}</li>", escape(f)))
            .collect();
        body.push_str(&format!("<ul>{items}</ul>"));
    }
    let freshness_rows: String = report
        .freshness
        .iter()
        .map(|f| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&f.source),
                f.latest
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "—".into()),
                if f.covers_week {
                    "yes"
                } else {
                    "<strong>no</strong>"
                },
                escape(&f.due),
                escape(&f.owner)
            )
        })
        .collect();
    body.push_str(&format!(
        "<h3>Freshness</h3><table><thead><tr><th>Source</th><th>Latest data</th><th>Covers the week</th><th>Week due (local)</th><th>Owner</th></tr></thead><tbody>{freshness_rows}</tbody></table>"
    ));
    let duplicate_rows: String = report
        .health
        .duplicates
        .iter()
        .map(|d| {
            format!(
                "<tr><td><code>{}</code></td><td class=\"num\" data-rows=\"{}\">{}</td><td class=\"num\" data-duplicates=\"{}\">{}</td></tr>",
                escape(&d.table),
                d.rows.map(|v| v.to_string()).unwrap_or_default(),
                d.rows.map(|v| format_value(Unit::Count, Some(v as f64))).unwrap_or_else(|| escape(d.error.as_deref().unwrap_or("—"))),
                d.duplicates.map(|v| v.to_string()).unwrap_or_default(),
                d.duplicates.map(|v| format_value(Unit::Count, Some(v as f64))).unwrap_or_else(|| "—".into()),
            )
        })
        .collect();
    body.push_str(&format!(
        "<h3>Duplicates removed</h3><table><thead><tr><th>Landed table</th><th class=\"num\">Rows landed</th><th class=\"num\">Exact duplicates removed by the views</th></tr></thead><tbody>{duplicate_rows}</tbody></table>"
    ));
    for r in &report.health.reconcile {
        let rows: String = r
            .rows
            .iter()
            .map(|(value, left, right, gap)| {
                let dim = format!(" data-dimension=\"{}\" data-dimension-value=\"{}\"", escape(&r.by), escape(value));
                format!(
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\" data-gap=\"{}\">{}</td></tr>",
                    escape(value),
                    number(&r.left, &report.week, Unit::Count, *left, &dim, ""),
                    number(&r.right, &report.week, Unit::Count, *right, &dim, ""),
                    gap.map(|g| g.to_string()).unwrap_or_default(),
                    gap.map(|g| format!("{:+.1}%", g * 100.0)).unwrap_or_else(|| "—".into()),
                )
            })
            .collect();
        body.push_str(&format!(
            "<h3>{label}</h3><table><thead><tr><th>{by}</th><th class=\"num\">{left}</th><th class=\"num\">{right}</th><th class=\"num\">Gap (tolerance ±{tol:.0}%)</th></tr></thead><tbody>{rows}</tbody></table>",
            label = escape(&r.label),
            by = escape(&r.by),
            left = escape(&r.left),
            right = escape(&r.right),
            tol = r.tolerance * 100.0,
        ));
    }
    body.push_str("</section>");

    // Footnotes.
    let notes: String = report
        .footnotes
        .iter()
        .map(|f| {
            format!(
                "<li><a href=\"/definitions/{m}\">{label}</a>: source of truth <strong>{sources}</strong>, owner {owner}, definition <code>{hash}</code>. {description}</li>",
                m = escape(&f.metric),
                label = escape(&f.label),
                sources = escape(&f.sources.join(" + ")),
                owner = escape(&f.owner),
                hash = escape(&f.hash),
                description = escape(&f.description),
            )
        })
        .collect();
    body.push_str(&format!(
        "<footer id=\"sources\"><h2>Where the numbers come from</h2><ol class=\"small\">{notes}</ol>\
<p class=\"small muted\">Every number: <a href=\"/reports/{d}/{w}.json\">JSON</a> · <a href=\"/reports/{d}/{w}.csv\">CSV</a>.</p></footer>",
        d = escape(&report.dashboard),
        w = escape(&report.week),
    ));

    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
<title>{title} — {week} · kpi</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        title = escape(&report.title),
        week = escape(&report.week),
    )
}
