//! Report pages, their JSON and CSV, and chart images, with ETags.
//!
//! The ETag of a report covers the definitions, the dashboard, the week, the attribution
//! settings, whether the week is complete, and the data version of every table of the sources
//! the report reads ([`crate::report::Context::etag`]): computing it lists the data root and
//! runs no query, so `If-None-Match` is answered with 304 cheaply. A computed report is kept
//! under its ETag and reused until data or definitions change it.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::error::ApiError;
use super::AppState;
use crate::cache::Cache;
use crate::error::Error;
use crate::render::charts;
use crate::report::{self, Report};

/// Reports computed, by dashboard and week, with the ETag they were computed under.
pub struct ReportCache {
    entries: Cache<(String, String), Cached>,
}

impl Default for ReportCache {
    fn default() -> Self {
        Self {
            entries: Cache::new(256),
        }
    }
}

/// One computed report and its rendered page.
#[derive(Clone)]
struct Cached {
    etag: String,
    report: Arc<Report>,
    html: Arc<String>,
}

impl ReportCache {
    fn get(&self, key: &(String, String), etag: &str) -> Option<Cached> {
        self.entries.get(key).filter(|c| c.etag == etag)
    }

    fn put(&self, key: (String, String), cached: Cached) {
        self.entries.insert(key, cached);
    }
}

/// What a report URL asks for.
#[derive(Clone, Copy, PartialEq)]
enum Format {
    Html,
    Json,
    Csv,
}

fn split_format(week: &str) -> (&str, Format) {
    if let Some(week) = week.strip_suffix(".json") {
        (week, Format::Json)
    } else if let Some(week) = week.strip_suffix(".csv") {
        (week, Format::Csv)
    } else if let Some(week) = week.strip_suffix(".html") {
        (week, Format::Html)
    } else {
        (week, Format::Html)
    }
}

/// A 200 response with the report's ETag; clients revalidate every time (`no-cache`).
fn tagged(content_type: &str, etag: String, body: impl IntoResponse) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

/// Returns the current report of a dashboard and week with its ETag, from the cache when the
/// ETag is unchanged (for pages that show the live report next to something else).
pub(super) async fn current_report(
    state: &AppState,
    dashboard: &str,
    week: &str,
) -> Result<(String, Arc<Report>), ApiError> {
    match report_or_not_modified(state, dashboard, week, &HeaderMap::new()).await? {
        Ok((etag, cached)) => Ok((etag, cached.report)),
        Err(_) => Err(Error::internal("a report lookup without If-None-Match answered 304").into()),
    }
}

/// Returns the report (from the cache when its ETag is unchanged) or a 304.
async fn report_or_not_modified(
    state: &AppState,
    dashboard: &str,
    week: &str,
    headers: &HeaderMap,
) -> Result<Result<(String, Cached), Response>, ApiError> {
    let registry = state.read_definitions().registry;
    let context = state.report_context(&registry);
    let definition = context.dashboard(dashboard)?;
    let period = context.week(week)?;
    let etag = context.etag(definition, period).await?;
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if matches {
        return Ok(Err((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag.clone()),
                (header::CACHE_CONTROL, "no-cache".to_string()),
            ],
        )
            .into_response()));
    }
    let key = (dashboard.to_string(), week.to_string());
    if let Some(cached) = state.reports.get(&key, &etag) {
        count_cache("hit");
        return Ok(Ok((etag, cached)));
    }
    count_cache("miss");
    let started = std::time::Instant::now();
    let built = context.build(definition, period).await?;
    crate::telemetry::observe(
        "kpi_report_build_duration_seconds",
        "Time to compute one report, by dashboard.",
        &[("dashboard", dashboard)],
        started.elapsed().as_secs_f64(),
    );
    tracing::info!(
        "report {dashboard} {week} computed in {} ms",
        started.elapsed().as_millis()
    );
    let html = crate::render::pages::report_page(&built).map_err(ApiError)?;
    let cached = Cached {
        etag: etag.clone(),
        report: Arc::new(built),
        html: Arc::new(html),
    };
    state.reports.put(key, cached.clone());
    Ok(Ok((etag, cached)))
}

/// Counts a report request answered from the cache (`hit`) or computed (`miss`).
fn count_cache(result: &str) {
    crate::telemetry::count(
        "kpi_report_cache_total",
        "Report requests answered from the cache (hit) or computed (miss).",
        &[("result", result)],
    );
}

/// `GET /reports/{dashboard}/{week}` (also `.json`, `.csv`).
pub async fn get_report(
    State(state): State<AppState>,
    Path((dashboard, week)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (week, format) = split_format(&week);
    let (etag, cached) = match report_or_not_modified(&state, &dashboard, week, &headers).await? {
        Ok(found) => found,
        Err(not_modified) => return Ok(not_modified),
    };
    let (content_type, body) = match format {
        Format::Html => match super::access::link_params(query.as_deref()) {
            // Opened with a signed link: its charts and exports need the same signature.
            (Some(exp), Some(sig)) => {
                let link_query = format!("?{}", signed_query(&exp, &sig));
                let html = crate::render::pages::report_page_linked(&cached.report, &link_query)?;
                ("text/html; charset=utf-8", html)
            }
            _ => ("text/html; charset=utf-8", cached.html.as_ref().clone()),
        },
        Format::Json => (
            "application/json",
            serde_json::to_string_pretty(cached.report.as_ref())
                .map_err(|e| Error::internal(e.to_string()))?,
        ),
        Format::Csv => ("text/csv; charset=utf-8", report::to_csv(&cached.report)),
    };
    Ok(tagged(content_type, etag, body))
}

/// `GET /charts/{dashboard}/{week}/{chart}.png` (or `.svg`).
pub async fn get_chart(
    State(state): State<AppState>,
    Path((dashboard, week, chart)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (name, png) = match (chart.strip_suffix(".png"), chart.strip_suffix(".svg")) {
        (Some(name), _) => (name.to_string(), true),
        (_, Some(name)) => (name.to_string(), false),
        _ => {
            return Err(Error::not_found(
                "unknown_chart",
                format!("`{chart}`: ask for NAME.png or NAME.svg"),
            )
            .into())
        }
    };
    let (etag, cached) = match report_or_not_modified(&state, &dashboard, &week, &headers).await? {
        Ok(found) => found,
        Err(not_modified) => return Ok(not_modified),
    };
    let data = cached
        .report
        .charts
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = cached
                .report
                .charts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            Error::not_found(
                "unknown_chart",
                format!(
                    "dashboard `{dashboard}` has no chart `{name}`; charts: {}",
                    names.join(", ")
                ),
            )
        })?;
    let (content_type, body) = if png {
        ("image/png", charts::png(data).map_err(Error::internal)?)
    } else {
        (
            "image/svg+xml",
            charts::svg(data).map_err(Error::internal)?.into_bytes(),
        )
    };
    Ok(tagged(content_type, etag, body))
}

/// `GET /reports/{dashboard}`: redirects to the latest complete week.
pub async fn get_latest(
    State(state): State<AppState>,
    Path(dashboard): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let registry = state.read_definitions().registry;
    let context = state.report_context(&registry);
    let definition = context.dashboard(&dashboard)?;
    let week = context
        .calendar
        .label(context.latest_complete_week(definition));
    let target = format!("/reports/{dashboard}/{week}");
    // A signed link to the dashboard leads to a link to the week, valid as long.
    let (exp, sig) = super::access::link_params(query.as_deref());
    let signed = exp
        .zip(sig)
        .and_then(|(exp, _)| exp.parse::<i64>().ok())
        .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0))
        .zip(state.signer());
    Ok(match signed {
        Some((expires, signer)) => {
            let scope = crate::links::Scope::Report {
                dashboard: dashboard.clone(),
                week,
            };
            Redirect::to(&format!("{target}?{}", signer.query(&scope, expires)))
        }
        None => Redirect::to(&target),
    }
    .into_response())
}

/// `exp=...&sig=...`, with both values as they came (URL-encoded again).
fn signed_query(exp: &str, sig: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("exp", exp)
        .append_pair("sig", sig)
        .finish()
}

/// `GET /`: every dashboard with its recent weeks.
pub async fn get_index(State(state): State<AppState>) -> Result<Response, ApiError> {
    let registry = state.read_definitions().registry;
    let context = state.report_context(&registry);
    let rows: Vec<_> = registry
        .dashboards
        .values()
        .map(|dashboard| {
            let mut week = context.latest_complete_week(dashboard);
            let mut weeks = Vec::new();
            for _ in 0..8 {
                weeks.push(context.calendar.label(week));
                week = context.calendar.previous(week);
            }
            (dashboard, weeks)
        })
        .collect();
    Ok(Html(crate::render::pages::index_page(&rows)?).into_response())
}
