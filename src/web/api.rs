//! JSON API handlers: the metric catalog, metric series and the OpenAPI document.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;

use super::error::ApiError;
use super::AppState;
use crate::defs::Registry;
use crate::error::Error;
use crate::metrics::{self, MetricService, SeriesRequest};
use crate::time::{Calendar, Grain, Period};

/// `GET /api/v1/metrics`: every metric with its definition.
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let registry = state.read_definitions().registry;
    let list: Vec<serde_json::Value> = registry
        .metrics
        .values()
        .map(|metric| catalog_entry(&registry, metric))
        .collect();
    Json(serde_json::json!({ "definitions_version": registry.version, "metrics": list }))
        .into_response()
}

/// One metric as the catalog shows it.
pub fn catalog_entry(
    registry: &crate::defs::Registry,
    metric: &crate::defs::Metric,
) -> serde_json::Value {
    let dashboards: Vec<&String> = registry
        .dashboards
        .values()
        .filter(|d| d.primary.contains(&metric.name) || d.supporting.contains(&metric.name))
        .map(|d| &d.name)
        .collect();
    serde_json::json!({
        "name": metric.name, "label": metric.label, "description": metric.description,
        "sources": metric.sources, "owner": metric.owner, "tier": metric.tier, "unit": metric.unit,
        "currency": metric.currency, "good": metric.good, "definition": metric.kind,
        "dimensions": metric.dimensions, "targets": metric.targets, "definition_hash": metric.hash,
        "parts": metrics::parts(metric), "sql": metrics::describe_sql(registry, metric),
        "dashboards": dashboards, "file": format!("{}:{}", metric.path.display(), metric.line),
    })
}

/// `GET /api/v1/metrics/{name}?from=&to=&grain=&by=&filter=&compare=&model=&lookback=`.
pub async fn get_metric_series(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = SeriesParams::parse(query.as_deref().unwrap_or_default())?;
    let calendar = state.config.calendar();
    let (from, to) = params.range(&calendar)?;
    let compare = metrics::parse_comparisons(&params.compare.join(","))?;
    let registry = state.read_definitions().registry;
    let request = SeriesRequest {
        metric: name,
        from,
        to,
        by: params.by,
        filters: metrics::parse_filters(&params.filter)?,
        compare: compare.clone(),
        attribution: metrics::attribution_choice(
            &state.config.attribution,
            params.model.as_deref(),
            params.lookback.as_deref(),
        )?,
    };
    let series = MetricService::new(&registry, &state.engine, calendar)
        .series(&request)
        .await?;
    let wants_csv = params.format.as_deref() == Some("csv")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        let body = metrics::to_csv(&series, &compare);
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            body,
        )
            .into_response());
    }
    let (range_start, _) = calendar.instants(from);
    let (_, range_end) = calendar.instants(to);
    let changes = definition_changes(&state, &registry, &series.metric, range_start, range_end);
    let mut body = serde_json::to_value(&series).map_err(|e| Error::internal(e.to_string()))?;
    body["definition_changes"] = serde_json::Value::Array(changes);
    Ok(Json(body).into_response())
}

/// The definition versions (of the metric or a part) first served inside the range, other
/// than the first version ever recorded: values on either side were computed differently.
fn definition_changes(
    state: &AppState,
    registry: &Registry,
    metric: &str,
    range_start: chrono::DateTime<Utc>,
    range_end: chrono::DateTime<Utc>,
) -> Vec<serde_json::Value> {
    let mut names = vec![metric.to_string()];
    names.extend(
        registry
            .metrics
            .get(metric)
            .map(metrics::parts)
            .unwrap_or_default(),
    );
    let history = match state.history.lock() {
        Ok(history) => history,
        Err(poisoned) => poisoned.into_inner(),
    };
    names
        .iter()
        .flat_map(|name| history.for_metric(name).into_iter().skip(1))
        .filter(|version| version.first_seen >= range_start && version.first_seen < range_end)
        .map(|version| {
            serde_json::json!({"metric": version.metric, "hash": version.hash,
            "first_seen": version.first_seen, "commit": version.commit})
        })
        .collect()
}

#[derive(Default)]
struct SeriesParams {
    from: Option<String>,
    to: Option<String>,
    grain: Option<String>,
    by: Vec<String>,
    filter: Vec<String>,
    compare: Vec<String>,
    format: Option<String>,
    model: Option<String>,
    lookback: Option<String>,
}

impl SeriesParams {
    /// Reads the query string; an unknown parameter is an error that lists the known ones.
    fn parse(query: &str) -> Result<Self, Error> {
        let mut params = Self::default();
        let list = |value: &str| -> Vec<String> {
            value
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.to_string();
            match key.as_ref() {
                "from" => params.from = Some(value),
                "to" => params.to = Some(value),
                "grain" => params.grain = Some(value),
                "by" => params.by.extend(list(&value)),
                "filter" => params.filter.extend(list(&value)),
                "compare" => params.compare.push(value),
                "format" => params.format = Some(value),
                "model" => params.model = Some(value),
                "lookback" => params.lookback = Some(value),
                other => {
                    return Err(Error::input(
                        "bad_parameter",
                        format!(
                            "unknown parameter `{other}`; use {}",
                            SERIES_KEYS.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(params)
    }

    /// The periods asked for; without a range, the 13 periods up to the last complete one.
    fn range(&self, calendar: &Calendar) -> Result<(Period, Period), Error> {
        let grain: Grain = match &self.grain {
            Some(text) => text
                .parse()
                .map_err(|message: String| Error::input("bad_grain", message))?,
            None => Grain::Week,
        };
        let current = calendar.period_of_instant(Utc::now(), grain);
        let last_complete = calendar.previous(current);
        let to = self
            .to
            .clone()
            .unwrap_or_else(|| calendar.label(last_complete));
        let from = self.from.clone().unwrap_or_else(|| {
            let mut first = calendar.parse_as(&to, grain, true).unwrap_or(last_complete);
            for _ in 0..12 {
                first = calendar.previous(first);
            }
            calendar.label(first)
        });
        metrics::parse_range(calendar, &from, &to, grain)
    }
}

/// `GET /api/openapi.json`.
pub async fn get_openapi() -> Response {
    Json(openapi_document()).into_response()
}

/// The query parameters of `GET /api/v1/metrics/{name}` (the parser and the document use both).
const SERIES_KEYS: [&str; 9] = [
    "from", "to", "grain", "by", "filter", "compare", "format", "model", "lookback",
];

/// The OpenAPI document of the JSON API.
fn openapi_document() -> serde_json::Value {
    let error = serde_json::json!({"type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}, "required": ["code", "message"]}}});
    let comparison = serde_json::json!({"type": "object", "properties": {
        "period": {"type": "string"}, "value": {"type": ["number", "null"]},
        "change": {"type": ["number", "null"]}, "change_ratio": {"type": ["number", "null"]}}});
    let point = serde_json::json!({"type": "object", "properties": {
        "period": {"type": "string", "example": "2026-W47"}, "start": {"type": "string", "format": "date"},
        "end": {"type": "string", "format": "date"},
        "dimensions": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "value": {"type": ["number", "null"]}, "target": {"type": ["number", "null"]},
        "comparisons": {"type": "object", "additionalProperties": comparison}},
        "required": ["period", "start", "end", "dimensions", "value", "comparisons"]});
    let series = serde_json::json!({"type": "object", "properties": {
        "metric": {"type": "string"}, "label": {"type": "string"}, "unit": {"type": "string"},
        "currency": {"type": ["string", "null"]}, "sources": {"type": "array", "items": {"type": "string"}},
        "definition_hash": {"type": "string"}, "grain": {"type": "string", "enum": ["day", "week", "month", "quarter"]},
        "by": {"type": "array", "items": {"type": "string"}}, "filters": {"type": "object"},
        "points": {"type": "array", "items": point},
        "definition_changes": {"type": "array", "description": "definition versions first served inside the range (of the metric or its parts)",
            "items": {"type": "object", "properties": {"metric": {"type": "string"}, "hash": {"type": "string"},
                "first_seen": {"type": "string", "format": "date-time"}, "commit": {"type": ["string", "null"]}}}}},
        "required": ["metric", "unit", "sources", "definition_hash", "grain", "points"]});
    let errors = |codes: &[(&str, &str)]| -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (status, description) in codes {
            map.insert((*status).to_string(), serde_json::json!({"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        }
        serde_json::Value::Object(map)
    };
    let mut series_responses = errors(&[
        (
            "400",
            "malformed period, grain, comparison, filter, or a dimension the metric does not allow",
        ),
        ("404", "unknown metric"),
        ("503", "the data could not be read"),
    ]);
    series_responses["200"] = serde_json::json!({"description": "the series", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Series"}},
        "text/csv": {"schema": {"type": "string"}}}});
    let mut sql_responses = errors(&[
        (
            "400",
            "the SQL does not parse, is not read-only, or does not plan",
        ),
        (
            "401",
            "server.api_token is set and the request did not send it as a Bearer token",
        ),
        (
            "503",
            "the query failed while running or hit the time limit",
        ),
    ]);
    sql_responses["200"] = serde_json::json!({"description": "rows", "content": {"application/json": {}, "text/csv": {}}});
    let query = |name: &str, description: &str| {
        serde_json::json!({"name": name, "in": "query", "required": false,
        "description": description, "schema": {"type": "string"}})
    };
    let document = serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "kpi", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Metric layer over landed Parquet: metric catalog, metric series, read-only SQL."},
        "paths": {
            "/api/v1/metrics": {"get": {"summary": "The metric catalog", "responses": {"200": {"description": "every metric with its definition"}}}},
            "/api/v1/metrics/{name}": {"get": {
                "summary": "A metric series",
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    query("from", "first period: 2026-W40, 2026-11-16, 2026-11 or 2026-Q4 (default: 12 periods before `to`)"),
                    query("to", "last period, included (default: the last complete period)"),
                    query("grain", "day, week (default), month or quarter"),
                    query("by", "dimensions to slice by, comma-separated"),
                    query("filter", "DIMENSION=VALUE, repeatable or comma-separated"),
                    query("compare", "previous, year_ago, trailing_4, comma-separated"),
                    query("format", "csv for CSV (or send Accept: text/csv)"),
                    query("model", "attribution model, for metrics that read reporting.attribution: first_touch, last_touch, last_non_direct, linear, position_based, time_decay, markov (default: kpi.toml)"),
                    query("lookback", "attribution lookback such as 30d, for attributed metrics (default: kpi.toml)")],
                "responses": series_responses}},
            "/api/v1/sql": {"post": {"summary": "Run one read-only SQL query",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                    "properties": {"sql": {"type": "string"}, "format": {"type": "string", "enum": ["json", "csv"]}},
                    "required": ["sql"]}}}},
                "responses": sql_responses}},
            "/healthz": {"get": {"summary": "Definitions status, tables and data root", "security": [], "responses": {"200": {"description": "status"}}}},
            "/metrics": {"get": {"summary": "Counters in the Prometheus text format (needs the token)",
                "responses": {"200": {"description": "text/plain; version=0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "401": {"description": "no or wrong token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/reports/{dashboard}/{week}": {"get": {
                "summary": "A weekly report: the page, or every number with the .json or .csv suffix on the week (2026-W45.json)",
                "parameters": [
                    {"name": "dashboard", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "week", "in": "path", "required": true, "schema": {"type": "string", "example": "2026-W45"}},
                    query("exp", "expiry of a signed link (Unix seconds)"),
                    query("sig", "signature of a signed link (kpi share)")],
                "responses": {"200": {"description": "text/html, application/json or text/csv; ETag, 304 on If-None-Match"},
                              "403": {"description": "signed pages: no link, or a changed or moved one"},
                              "410": {"description": "signed pages: the link expired"},
                              "404": {"description": "unknown dashboard", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
            "/api/v1/snapshots/{dashboard}/{week}": {"post": {
                "summary": "Take a snapshot of a weekly report (a no-op for unchanged inputs)",
                "parameters": [
                    {"name": "dashboard", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "week", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"201": {"description": "a new snapshot", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SnapshotTaken"}}}},
                              "200": {"description": "the existing snapshot of the same inputs", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SnapshotTaken"}}}},
                              "401": {"description": "no or wrong token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}}
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "server.api_token: needed for writes, SQL and /metrics when set; with page_access = signed also for series"}},
            "schemas": {"Error": error, "Series": series, "Point": point,
                "SnapshotTaken": {"type": "object", "properties": {
                    "id": {"type": "string"}, "dashboard": {"type": "string"}, "week": {"type": "string"},
                    "taken_at": {"type": "string", "format": "date-time"}, "previous": {"type": ["string", "null"]},
                    "created": {"type": "boolean"}, "url": {"type": "string"}},
                    "required": ["id", "dashboard", "week", "taken_at", "created", "url"]}}}
    });
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_series_parameter_the_parser_accepts() {
        let document = openapi_document();
        let parameters = document["paths"]["/api/v1/metrics/{name}"]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        let documented: Vec<&str> = parameters
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for key in SERIES_KEYS {
            assert!(documented.contains(&key), "`{key}` is not documented");
            let query = format!("{key}=x");
            assert!(SeriesParams::parse(&query).is_ok(), "`{key}` is not parsed");
        }
        assert!(SeriesParams::parse("nope=1").is_err());
        for path in [
            "/api/v1/sql",
            "/api/v1/snapshots/{dashboard}/{week}",
            "/metrics",
            "/reports/{dashboard}/{week}",
        ] {
            assert!(
                document["paths"][path].is_object(),
                "{path} is not documented"
            );
        }
    }
}
