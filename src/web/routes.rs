//! Every route in one table: its method, path, handler, time-limit group, query parameters
//! and answers. The router is built from this table and the OpenAPI document is generated from
//! it (answer schemas derived from the Rust types the handlers return, with schemars), so a
//! route or a parameter cannot exist without being documented.

use axum::routing::{get, post, MethodRouter};
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{json, Map, Value};

use super::{api, attribution, pages, reports, snapshots, AppState};

/// How a route's answer is written, for the document.
#[derive(Clone, Copy)]
pub(super) enum Body {
    /// JSON of the named schema (in `components.schemas`).
    Json(&'static str),
    /// JSON without a fixed schema.
    AnyJson,
    /// An HTML page.
    Html,
    /// Plain text.
    Text,
    /// A report page, its JSON (`Report`) or its CSV, by the suffix of the week.
    Report,
    /// A PNG or an SVG, by the suffix of the name.
    Image,
    /// No body (a redirect, a 304).
    Empty,
}

/// One route, as the router serves it and the document describes it.
pub(super) struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Cheap routes get a short time limit and never wait behind heavy ones.
    pub light: bool,
    pub query: &'static [(&'static str, &'static str)],
    pub answers: &'static [(u16, &'static str, Body)],
}

const SIGNED: &[(&str, &str)] = &[
    ("exp", "expiry of a signed link, Unix seconds (kpi share)"),
    ("sig", "signature of a signed link (kpi share)"),
];
const REFUSED: [(u16, &str, Body); 3] = [
    (
        403,
        "signed pages: no link, or a changed or moved one",
        Body::Html,
    ),
    (410, "signed pages: the link expired", Body::Html),
    (404, "unknown dashboard, week or file", Body::Json("Error")),
];

/// Every route with its handler.
pub(super) fn table() -> Vec<(Route, MethodRouter<AppState>)> {
    let route = |method, path, summary, light, query, answers| Route {
        method,
        path,
        summary,
        light,
        query,
        answers,
    };
    vec![
        (
            route("get", "/healthz", "Definitions status, tables and data root", true, &[],
                &[(200, "status: ok or degraded, with every problem", Body::AnyJson)]),
            get(super::get_health),
        ),
        (
            route("get", "/metrics", "Counters in the Prometheus text format (needs the token)", true, &[],
                &[(200, "text format 0.0.4", Body::Text), (401, "no or wrong token", Body::Json("Error"))]),
            get(super::get_metrics_text),
        ),
        (
            route("get", "/api/v1/metrics", "The metric catalog", true, &[],
                &[(200, "every metric with its definition, source of truth and SQL", Body::AnyJson)]),
            get(api::get_metrics),
        ),
        (
            route("get", "/api/openapi.json", "This document", true, &[],
                &[(200, "OpenAPI 3.1", Body::AnyJson)]),
            get(api::get_openapi),
        ),
        (
            route("get", "/definitions", "The metric catalog page", true, &[], &[(200, "page", Body::Html)]),
            get(pages::get_catalog),
        ),
        (
            route("get", "/definitions/{name}", "One metric's definition, SQL, users and history", true, &[],
                &[(200, "page", Body::Html), (404, "unknown metric", Body::Json("Error"))]),
            get(pages::get_definition),
        ),
        (
            route("get", "/", "Every dashboard with its recent weeks", true, &[], &[(200, "page", Body::Html)]),
            get(reports::get_index),
        ),
        (
            route("get", "/sends", "The send log", true, &[],
                &[(200, "page", Body::Html), (401, "signed pages: the token is needed", Body::Json("Error"))]),
            get(snapshots::get_sends),
        ),
        (
            route("get", "/alerts", "Every alert with its state per week", true, &[],
                &[(200, "page", Body::Html)]),
            get(super::alerts::get_alerts_page),
        ),
        (
            route("get", "/api/v1/alerts", "Every alert with its condition and recorded states", true, &[],
                &[(200, "every alert", Body::AnyJson)]),
            get(super::alerts::get_alerts),
        ),
        (
            route("post", "/api/v1/sql", "Run one read-only SQL query (body: SqlRequest)", false, &[],
                &[(200, "rows (JSON, or CSV with Accept: text/csv)", Body::Json("SqlAnswer")),
                  (400, "the SQL does not parse, is not read-only, or does not plan", Body::Json("Error")),
                  (401, "a token is set and the request did not send it", Body::Json("Error")),
                  (413, "the body is over 1 MiB", Body::Empty),
                  (503, "the query failed while running or hit the time limit", Body::Json("Error"))]),
            post(super::post_sql),
        ),
        (
            route("get", "/api/v1/metrics/{name}", "A metric series", false, &api::SERIES_PARAMS,
                &[(200, "the series (JSON, or CSV with format=csv or Accept: text/csv)", Body::Json("Series")),
                  (400, "malformed period, grain, comparison, filter, attribution, or a dimension the metric does not allow", Body::Json("Error")),
                  (401, "signed pages: the token is needed", Body::Json("Error")),
                  (404, "unknown metric", Body::Json("Error")),
                  (503, "the data could not be read", Body::Json("Error"))]),
            get(api::get_metric_series),
        ),
        (
            route("get", "/attribution", "Every attribution rule, a worked example and this project's numbers under every model", false,
                &attribution::PARAMS,
                &[(200, "page", Body::Html), (400, "a bad week, lookback or metric", Body::Json("Error")),
                  (401, "signed pages: the token is needed", Body::Json("Error"))]),
            get(attribution::get_attribution),
        ),
        (
            route("get", "/reports/{dashboard}", "Redirect to the latest complete week", false, SIGNED,
                &[(303, "to /reports/{dashboard}/{week}", Body::Empty), REFUSED[0], REFUSED[1], REFUSED[2]]),
            get(reports::get_latest),
        ),
        (
            route("get", "/reports/{dashboard}/{week}", "A weekly report: the page, or every number with .json or .csv after the week (2026-W45.json)", false, SIGNED,
                &[(200, "HTML, JSON (Report) or CSV; ETag", Body::Report), (304, "not modified (If-None-Match)", Body::Empty),
                  REFUSED[0], REFUSED[1], REFUSED[2]]),
            get(reports::get_report),
        ),
        (
            route("get", "/charts/{dashboard}/{week}/{chart}", "One chart of a report, NAME.png or NAME.svg", false, SIGNED,
                &[(200, "the chart", Body::Image), REFUSED[0], REFUSED[1], REFUSED[2]]),
            get(reports::get_chart),
        ),
        (
            route("get", "/snapshots/{dashboard}/{week}", "The latest snapshot of a week", false, SIGNED,
                &[(200, "page", Body::Html), REFUSED[0], REFUSED[1], REFUSED[2]]),
            get(snapshots::get_latest),
        ),
        (
            route("get", "/snapshots/{dashboard}/{week}/{id}", "One snapshot: its page, or its data with .json after the id", false, SIGNED,
                &[(200, "page or JSON", Body::Html), REFUSED[0], REFUSED[1], REFUSED[2]]),
            get(snapshots::get_snapshot),
        ),
        (
            route("get", "/snapshots/{dashboard}/{week}/{id}/charts/{file}", "A frozen chart of a snapshot", false, SIGNED,
                &[(200, "the chart", Body::Image), REFUSED[0], REFUSED[1], REFUSED[2]]),
            get(snapshots::get_snapshot_chart),
        ),
        (
            route("post", "/api/v1/snapshots/{dashboard}/{week}", "Take a snapshot of a weekly report (a no-op for unchanged inputs)", false, &[],
                &[(201, "a new snapshot", Body::Json("SnapshotTaken")),
                  (200, "the existing snapshot of the same inputs", Body::Json("SnapshotTaken")),
                  (401, "a token is set and the request did not send it", Body::Json("Error")),
                  (404, "unknown dashboard", Body::Json("Error"))]),
            post(snapshots::post_snapshot),
        ),
    ]
}

/// The OpenAPI document of `routes`, with the answer schemas derived from the Rust types.
pub(super) fn document(routes: &[Route]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.definitions_path = "/components/schemas".into();
            settings.contract = Contract::Serialize;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut schemas = Map::new();
    let named = [
        (
            "Series",
            generator.subschema_for::<crate::metrics::Series>(),
        ),
        ("Report", generator.subschema_for::<crate::report::Report>()),
        (
            "Error",
            generator.subschema_for::<super::error::ErrorBody>(),
        ),
        ("SqlAnswer", generator.subschema_for::<super::SqlAnswer>()),
        ("SqlRequest", generator.subschema_for::<super::SqlRequest>()),
        (
            "SnapshotTaken",
            generator.subschema_for::<snapshots::SnapshotTaken>(),
        ),
    ];
    schemas.extend(generator.take_definitions(true));
    for (name, schema) in named {
        // The document's own names: a reference to the type's definition, or the schema whole.
        if !schemas.contains_key(name) {
            schemas.insert(name.to_string(), schema.to_value());
        }
    }
    let mut paths = Map::new();
    for route in routes {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "kpi", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Metric layer and weekly reports over landed Parquet. Generated from the route table the server is built from (src/web/routes.rs)."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "server.api_token: needed for writes, SQL and /metrics when set; with page_access = signed also for series, /attribution and /sends, and (or a signed link) for reports, charts and snapshots"}},
            "schemas": schemas
        }
    })
}

fn operation(route: &Route) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(route.query.iter().map(|(name, description)| {
        json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
    }));
    let mut responses = Map::new();
    for (status, description, body) in route.answers {
        let content = match body {
            Body::Json(schema) => {
                json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}})
            }
            Body::AnyJson => json!({"application/json": {"schema": {"type": "object"}}}),
            Body::Html => json!({"text/html": {"schema": {"type": "string"}}}),
            Body::Text => json!({"text/plain": {"schema": {"type": "string"}}}),
            Body::Report => json!({
                "text/html": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/Report"}},
                "text/csv": {"schema": {"type": "string"}}}),
            Body::Image => {
                json!({"image/png": {}, "image/svg+xml": {"schema": {"type": "string"}}})
            }
            Body::Empty => Value::Null,
        };
        let mut answer = json!({"description": description});
        if !content.is_null() {
            answer["content"] = content;
        }
        responses.insert(status.to_string(), answer);
    }
    let mut operation =
        json!({"summary": route.summary, "parameters": parameters, "responses": responses});
    if matches!(
        route.path,
        "/healthz"
            | "/api/openapi.json"
            | "/api/v1/metrics"
            | "/definitions"
            | "/definitions/{name}"
            | "/"
    ) {
        operation["security"] = json!([]);
    }
    if route.path == "/api/v1/sql" {
        operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SqlRequest"}}}});
    }
    operation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_parameter_is_in_the_document() {
        let routes: Vec<Route> = table().into_iter().map(|(route, _)| route).collect();
        let document = document(&routes);
        for route in &routes {
            let operation = &document["paths"][route.path][route.method];
            assert!(
                operation.is_object(),
                "{} {} is not documented",
                route.method,
                route.path
            );
            let names: Vec<&str> = operation["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            for (name, _) in route.query {
                assert!(names.contains(name), "{} lacks `{name}`", route.path);
            }
            for part in route.path.split('/').filter(|p| p.starts_with('{')) {
                let name = part.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    names.contains(&name),
                    "{} lacks path parameter `{name}`",
                    route.path
                );
            }
            for (status, _, body) in route.answers {
                if let Body::Json(schema) = body {
                    assert!(
                        document["components"]["schemas"][*schema].is_object(),
                        "schema {schema} of {} {status} is missing",
                        route.path
                    );
                }
            }
        }
        for schema in [
            "Series",
            "Point",
            "Report",
            "Tile",
            "Error",
            "SqlAnswer",
            "SnapshotTaken",
        ] {
            assert!(
                document["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
        }
        let text = document.to_string();
        assert!(
            !text.contains("\"$ref\":\"#/$defs"),
            "every reference points into components"
        );
    }
}
