//! The metric catalog pages, server-rendered HTML that reads without JavaScript.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::defs::MetricKind;
use crate::error::Error;
use crate::metrics;

pub use crate::report::html::escape;

/// Wraps a page body in the shared layout.
pub(super) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">\
<title>{title} · kpi</title><style>\
body{{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.45}}\
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}}\
th{{background:#f4f4f4}}code,pre{{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}}pre{{background:#f6f6f6;padding:.8rem;overflow:auto;white-space:pre-wrap}}\
a{{color:#0b57d0}}nav{{margin-bottom:1rem}}.muted{{color:#666}}dl{{display:grid;grid-template-columns:12rem 1fr;gap:.3rem 1rem}}dt{{font-weight:600}}\
td.num{{text-align:right;font-variant-numeric:tabular-nums}}table.example td,table.example th{{font-size:.85em}}tfoot th,tfoot td{{font-weight:600;border-top:2px solid #999}}\
@media print{{nav{{display:none}}a{{color:inherit;text-decoration:none}}}}\
</style></head><body><nav><a href=\"/definitions\">Metric catalog</a> · <a href=\"/attribution\">Attribution</a> · <a href=\"/healthz\">Health</a> · <a href=\"/api/openapi.json\">API</a></nav>\n{body}\n</body></html>\n",
        title = escape(title)
    ))
}

fn kind_name(kind: &MetricKind) -> &'static str {
    match kind {
        MetricKind::Simple { .. } => "simple",
        MetricKind::Ratio { .. } => "ratio",
        MetricKind::Derived { .. } => "derived",
        MetricKind::Cumulative { .. } => "cumulative",
        MetricKind::Conversion { .. } => "conversion",
    }
}

/// `GET /definitions`: every metric, one row each.
pub async fn get_catalog(State(state): State<AppState>) -> Response {
    let registry = state.read_definitions().registry;
    let mut rows = String::new();
    for metric in registry.metrics.values() {
        rows.push_str(&format!(
            "<tr><td><a href=\"/definitions/{name}\">{label}</a><br><code class=\"muted\">{name}</code></td><td>{description}</td><td>{kind}</td><td>{sources}</td><td>{tier}</td><td>{owner}</td><td><code>{hash}</code></td></tr>\n",
            name = escape(&metric.name),
            label = escape(&metric.label),
            description = escape(&metric.description),
            kind = kind_name(&metric.kind),
            sources = escape(&metric.sources.join(" + ")),
            tier = escape(metric.tier.name()),
            owner = escape(&metric.owner),
            hash = escape(&metric.hash),
        ));
    }
    let body = format!(
        "<h1>Metric catalog</h1><p class=\"muted\">Definitions version <code>{}</code> · {} metrics · each number's source of truth is named.</p>\
<table><thead><tr><th>Metric</th><th>Meaning</th><th>Kind</th><th>Source of truth</th><th>Tier</th><th>Owner</th><th>Definition</th></tr></thead><tbody>\n{rows}</tbody></table>",
        escape(&registry.version),
        registry.metrics.len()
    );
    page("Metric catalog", &body).into_response()
}

/// `GET /definitions/{name}`: one metric's definition, SQL, users and history.
pub async fn get_definition(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let registry = state.read_definitions().registry;
    let metric = registry
        .metrics
        .get(&name)
        .ok_or_else(|| Error::not_found("unknown_metric", format!("no metric named `{name}`")))?;
    let entry = super::api::catalog_entry(&registry, metric);
    let dashboards: Vec<String> = registry
        .dashboards
        .values()
        .filter(|d| d.primary.contains(&metric.name) || d.supporting.contains(&metric.name))
        .map(|d| format!("{} (<code>{}</code>)", escape(&d.title), escape(&d.name)))
        .collect();
    let parts: Vec<String> = metrics::parts(metric)
        .iter()
        .map(|part| {
            let sources = registry
                .metrics
                .get(part)
                .map(|m| m.sources.join(" + "))
                .unwrap_or_default();
            format!(
                "<a href=\"/definitions/{0}\">{0}</a> ({1})",
                escape(part),
                escape(&sources)
            )
        })
        .collect();
    let targets: Vec<String> = metric
        .targets
        .iter()
        .map(|(week, value)| {
            format!(
                "from {}: {}",
                escape(week),
                metrics::format_value(metric.unit, Some(*value))
            )
        })
        .collect();
    let history = match state.history.lock() {
        Ok(history) => history.for_metric(&metric.name),
        Err(poisoned) => poisoned.into_inner().for_metric(&metric.name),
    };
    let mut history_rows = String::new();
    for version in history.iter().rev() {
        let current = if version.hash == metric.hash {
            " (current)"
        } else {
            ""
        };
        history_rows.push_str(&format!(
            "<tr><td><code>{}</code>{current}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&version.hash),
            escape(&version.first_seen.to_rfc3339()),
            escape(version.commit.as_deref().unwrap_or("—"))
        ));
    }
    let none = "—".to_string();
    let body = format!(
        "<h1>{label}</h1><p>{description}</p><dl>\
<dt>Name</dt><dd><code>{name}</code></dd>\
<dt>Source of truth</dt><dd>{sources}</dd>\
<dt>Kind</dt><dd>{kind}</dd>\
<dt>Computed from</dt><dd>{parts}</dd>\
<dt>Unit</dt><dd>{unit}{currency}</dd>\
<dt>Good direction</dt><dd>{good}</dd>\
<dt>Tier</dt><dd>{tier}</dd>\
<dt>Owner</dt><dd>{owner}</dd>\
<dt>Dimensions</dt><dd>{dimensions}</dd>\
<dt>Weekly targets</dt><dd>{targets}</dd>\
<dt>Used by dashboards</dt><dd>{dashboards}</dd>\
<dt>Defined in</dt><dd><code>{file}</code></dd>\
<dt>Definition hash</dt><dd><code>{hash}</code></dd>\
<dt>Series API</dt><dd><a href=\"/api/v1/metrics/{name}?compare=previous,year_ago\">/api/v1/metrics/{name}</a></dd>\
</dl><h2>SQL that runs</h2><pre>{sql}</pre>\
<h2>Version history</h2><table><thead><tr><th>Definition hash</th><th>First served</th><th>Git commit</th></tr></thead><tbody>{history}</tbody></table>",
        label = escape(&metric.label),
        description = escape(&metric.description),
        name = escape(&metric.name),
        sources = escape(&metric.sources.join(" + ")),
        kind = kind_name(&metric.kind),
        parts = if parts.is_empty() { none.clone() } else { parts.join(", ") },
        unit = escape(metric.unit.name()),
        currency = metric.currency.as_ref().map(|c| format!(" ({})", escape(c))).unwrap_or_default(),
        good = escape(metric.good.name()),
        tier = escape(metric.tier.name()),
        owner = escape(&metric.owner),
        dimensions = if metric.dimensions.is_empty() { none.clone() } else { escape(&metric.dimensions.join(", ")) },
        targets = if targets.is_empty() { none.clone() } else { targets.join("; ") },
        dashboards = if dashboards.is_empty() { none.clone() } else { dashboards.join(", ") },
        file = escape(entry["file"].as_str().unwrap_or_default()),
        hash = escape(&metric.hash),
        sql = escape(entry["sql"].as_str().unwrap_or_default()),
        history = if history_rows.is_empty() { "<tr><td colspan=\"3\">—</td></tr>".to_string() } else { history_rows },
    );
    Ok(page(&metric.label, &body).into_response())
}
