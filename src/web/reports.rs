//! Report pages, their JSON and CSV, and chart images, with ETags.
//!
//! The ETag of a report covers the definitions, the dashboard, the week, the attribution
//! settings, whether the week is complete, and the data version of every table of the sources
//! the report reads ([`crate::report::Context::etag`]): computing it lists the data root and
//! runs no query, so `If-None-Match` is answered with 304 cheaply. A computed report is kept
//! under its ETag and reused until data or definitions change it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::encoded::{self, Encoded};
use super::error::ApiError;
use super::AppState;
use crate::cache::{Cache, Flights};
use crate::error::Error;
use crate::render::charts;
use crate::report::{self, Report};
use std::sync::OnceLock;

/// Reports computed, by dashboard and week, with the ETag they were computed under.
///
/// A report is computed once however many ask for it at the same time: the background build
/// and every request for the same dashboard, week and ETag wait for one computation
/// ([`ReportCache::get_or_build`]).
pub struct ReportCache {
    entries: Cache<(String, String), Cached>,
    flights: Flights<Flight, Cached>,
}

/// A report being computed: dashboard, week, ETag.
type Flight = (String, String, String);

impl ReportCache {
    /// Reports kept within `max_bytes` (by [`Cached::weight`]), at most 256 of them.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: Cache::weighed(256, max_bytes, Cached::weight),
            flights: Flights::default(),
        }
    }

    /// Bytes the kept reports weigh.
    pub fn bytes(&self) -> usize {
        self.entries.bytes()
    }
}

impl ReportCache {
    fn get(&self, key: &(String, String), etag: &str) -> Option<Cached> {
        self.entries.get(key).filter(|c| c.etag == etag)
    }

    /// The newest report kept for a dashboard and week, whatever its ETag.
    fn newest(&self, key: &(String, String)) -> Option<Cached> {
        self.entries.get(key)
    }

    /// Whether a report for the dashboard and week is kept under `etag`.
    pub(super) fn holds(&self, key: &(String, String), etag: &str) -> bool {
        self.get(key, etag).is_some()
    }

    /// The dashboards and weeks kept (the background build keeps them current).
    pub(super) fn keys(&self) -> Vec<(String, String)> {
        self.entries.keys()
    }

    /// Returns the report kept under `etag`, or computes it with `build` once, whoever else
    /// asks for it meanwhile (they wait for the same computation; when it fails, the next
    /// waiter tries again).
    pub(super) async fn get_or_build<F, Fut>(
        &self,
        key: (String, String),
        etag: &str,
        build: F,
    ) -> Result<Cached, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Cached, ApiError>>,
    {
        if let Some(cached) = self.get(&key, etag) {
            return Ok(cached);
        }
        let flight: Flight = (key.0.clone(), key.1.clone(), etag.to_string());
        self.flights
            .run(flight, || async {
                // Computed meanwhile by a flight that just landed.
                if let Some(cached) = self.get(&key, etag) {
                    return Ok(cached);
                }
                let cached = build().await?;
                self.entries.insert(key.clone(), cached.clone());
                Ok(cached)
            })
            .await
    }
}

/// One computed report and its answers as bytes: the page rendered with it, the JSON, CSV and
/// charts rendered the first time they are asked for, each kept with its compressed forms.
#[derive(Clone)]
pub(super) struct Cached {
    etag: String,
    report: Arc<Report>,
    bodies: Arc<Bodies>,
}

/// The answers of one report, rendered once.
struct Bodies {
    html: Encoded,
    json: OnceLock<Encoded>,
    csv: OnceLock<Encoded>,
    /// Charts (`chart NAME.png`) and pages opened with a signed link (`link ?exp=…&sig=…`),
    /// at most [`RENDERED_KEPT`]; past that they are rendered per request.
    rendered: std::sync::Mutex<HashMap<String, Arc<Encoded>>>,
    /// This report marked as being refreshed, for the time the newer data was seen.
    refreshing: std::sync::Mutex<Option<(chrono::DateTime<chrono::Utc>, Cached)>>,
}

/// Charts and signed-link pages kept per report (an email's link is one per send).
const RENDERED_KEPT: usize = 16;

impl Cached {
    /// What a kept report weighs, estimated when it is kept: four times its page (the report
    /// itself, and the JSON, CSV, compressed forms, charts and signed-link pages rendered from
    /// it later, those last two at most [`RENDERED_KEPT`]).
    fn weight(&self) -> usize {
        self.bodies.html.size() * 4
    }

    fn new(etag: String, report: Report, html: String) -> Self {
        Self {
            etag,
            report: Arc::new(report),
            bodies: Arc::new(Bodies {
                html: Encoded::new("text/html; charset=utf-8", html),
                json: OnceLock::new(),
                csv: OnceLock::new(),
                rendered: std::sync::Mutex::default(),
                refreshing: std::sync::Mutex::default(),
            }),
        }
    }

    /// The report as JSON, rendered the first time.
    fn json(&self) -> Result<&Encoded, ApiError> {
        if let Some(json) = self.bodies.json.get() {
            return Ok(json);
        }
        let text = serde_json::to_string_pretty(self.report.as_ref())
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(self
            .bodies
            .json
            .get_or_init(|| Encoded::new("application/json", text)))
    }

    /// The report as CSV, rendered the first time.
    fn csv(&self) -> &Encoded {
        self.bodies
            .csv
            .get_or_init(|| Encoded::new("text/csv; charset=utf-8", report::to_csv(&self.report)))
    }

    /// An answer kept under `key`, rendered by `render` the first time.
    fn rendered(
        &self,
        key: String,
        render: impl FnOnce() -> Result<Encoded, ApiError>,
    ) -> Result<Arc<Encoded>, ApiError> {
        let lock = || {
            self.bodies
                .rendered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let Some(found) = lock().get(&key) {
            return Ok(Arc::clone(found));
        }
        let encoded = Arc::new(render()?);
        let mut kept = lock();
        if kept.len() >= RENDERED_KEPT {
            return Ok(encoded);
        }
        Ok(Arc::clone(kept.entry(key).or_insert(encoded)))
    }

    /// A chart as PNG or SVG, rendered the first time.
    fn chart(&self, name: &str, png: bool) -> Result<Arc<Encoded>, ApiError> {
        let key = format!("chart {name}.{}", if png { "png" } else { "svg" });
        self.rendered(key, || {
            let data = self
                .report
                .charts
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        self.report.charts.iter().map(|c| c.name.as_str()).collect();
                    Error::not_found(
                        "unknown_chart",
                        format!(
                            "dashboard `{}` has no chart `{name}`; charts: {}",
                            self.report.dashboard,
                            names.join(", ")
                        ),
                    )
                })?;
            Ok(if png {
                Encoded::new("image/png", charts::png(data).map_err(Error::internal)?)
            } else {
                Encoded::new(
                    "image/svg+xml",
                    charts::svg(data).map_err(Error::internal)?.into_bytes(),
                )
            })
        })
    }

    /// The page opened with a signed link: its charts and exports carry the same signature.
    fn linked_page(&self, link_query: &str) -> Result<Arc<Encoded>, ApiError> {
        self.rendered(format!("link {link_query}"), || {
            let html = crate::render::pages::report_page_linked(&self.report, link_query)?;
            Ok(Encoded::new("text/html; charset=utf-8", html))
        })
    }

    /// This report with a banner saying newer data, seen at `since`, is being built in; made
    /// once per `since`.
    fn refreshing(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Cached, ApiError> {
        let mut kept = self
            .bodies
            .refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((at, cached)) = kept.as_ref() {
            if *at == since {
                return Ok(cached.clone());
            }
        }
        let mut report = self.report.as_ref().clone();
        report.banners.insert(
            0,
            format!(
                "Refreshing: new data or definitions were seen at {} UTC and this report is being computed again; these are the numbers from before. Reload in a moment.",
                since.format("%Y-%m-%d %H:%M:%S")
            ),
        );
        let html = crate::render::pages::report_page(&report).map_err(ApiError)?;
        // Its own tag: the page differs from the one first served under the old tag.
        let etag = format!("{}-refreshing\"", self.etag.trim_end_matches('"'));
        let cached = Cached::new(etag, report, html);
        *kept = Some((since, cached.clone()));
        Ok(cached)
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
    if encoded::none_match(headers, &etag) {
        return Ok(Err(encoded::not_modified(&etag)));
    }
    let key = (dashboard.to_string(), week.to_string());
    if let Some(cached) = state.reports.get(&key, &etag) {
        count_cache("hit");
        return Ok(Ok((etag, cached)));
    }
    // Data or definitions changed: with background builds on, the last complete report keeps
    // serving, marked as refreshing, while the build computes the new one.
    if let Some(stale) = state.reports.newest(&key) {
        if let Some(since) = state.builder.refresh_soon(dashboard, week, &etag) {
            count_cache("refreshing");
            let refreshed = stale.refreshing(since)?;
            return Ok(Ok((refreshed.etag.clone(), refreshed)));
        }
    }
    count_cache("miss");
    let cached = state
        .reports
        .get_or_build(key, &etag, || async {
            let _turn = state.gate.admit("this report").await?;
            compute(&context, definition, period, &etag).await
        })
        .await?;
    Ok(Ok((etag, cached)))
}

/// Computes a report and renders its page.
pub(super) async fn compute(
    context: &report::Context<'_>,
    definition: &crate::defs::Dashboard,
    period: crate::time::Period,
    etag: &str,
) -> Result<Cached, ApiError> {
    let dashboard = definition.name.as_str();
    let week = context.calendar.label(period);
    let started = std::time::Instant::now();
    let built = context.build(definition, period).await;
    // The views kept for the build are not needed between builds: memory goes back.
    context.engine.release_build_session().await;
    let built = built?;
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
    Ok(Cached::new(etag.to_string(), built, html))
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
    let page = match format {
        Format::Html => match super::access::link_params(query.as_deref()) {
            // Opened with a signed link: its charts and exports need the same signature.
            (Some(exp), Some(sig)) => {
                let link_query = format!("?{}", signed_query(&exp, &sig));
                let page = cached.linked_page(&link_query)?;
                return Ok(page.respond(&headers, Some(&etag)));
            }
            _ => &cached.bodies.html,
        },
        Format::Json => cached.json()?,
        Format::Csv => cached.csv(),
    };
    Ok(page.respond(&headers, Some(&etag)))
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
    Ok(cached.chart(&name, png)?.respond(&headers, Some(&etag)))
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
