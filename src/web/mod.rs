//! The HTTP server: an axum router over the engine and the definitions, nothing more.
//!
//! [`Application::build`] loads everything and binds (port 0 works, for tests) separately from
//! [`Application::run`], so an integration test starts the real server in three lines. Handlers
//! are short adapters: extract, call one library function, render. No SQL is built here.

pub mod access;
pub mod alerts;
pub mod api;
pub mod attribution;
pub mod builder;
pub mod encoded;
pub mod error;
pub mod gate;
pub mod pages;
pub mod reports;
mod routes;
pub mod snapshots;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::Config;
use crate::defs::history::{git_commit, History};
use crate::defs::{self, Diagnostic, Registry};
use crate::engine::{Engine, QueryLimits};
use crate::error::{Error, Result};
use crate::output::{self, Format};
use error::ApiError;

/// What the server currently serves, and what went wrong with the latest edit.
#[derive(Debug, Clone)]
pub struct DefinitionsStatus {
    /// The last valid definition set.
    pub registry: Arc<Registry>,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Problems of the newest files on disk, when they are not valid (the old set keeps serving).
    pub errors: Vec<Diagnostic>,
    /// Fingerprint of the files last looked at.
    pub fingerprint: String,
}

/// Shared state of all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The query engine.
    pub engine: Engine,
    /// The configuration.
    pub config: Arc<Config>,
    /// Definitions being served.
    pub definitions: Arc<RwLock<DefinitionsStatus>>,
    /// Every metric definition version served, with first-seen times.
    pub history: Arc<std::sync::Mutex<History>>,
    /// Computed reports by dashboard and week, reused while their ETag holds.
    pub reports: Arc<reports::ReportCache>,
    /// The background build: its progress, and whether it is running.
    pub builder: Arc<builder::Builder>,
    /// Heavy computations' turns (`server.max_concurrent_builds`).
    pub gate: Arc<gate::Gate>,
    /// Metric API answers by query and data version.
    pub answers: Arc<api::Answers>,
    /// The report ETag each dashboard's alerts were last judged at (judged again when it
    /// changes: new data, new definitions, a new week).
    pub alerts_judged: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl AppState {
    /// Loads the definitions against the current data; refuses to build on an invalid set.
    pub async fn try_new(config: Arc<Config>, engine: Engine) -> Result<Self> {
        engine.refresh().await?;
        let fingerprint = defs::fingerprint(&config.project_dir);
        let (registry, planned) =
            defs::load_planned(&config, &engine)
                .await
                .map_err(|problems| {
                    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    Error::input(
                        "invalid_definitions",
                        format!(
                            "definitions are invalid; the server will not start:\n{}",
                            lines.join("\n")
                        ),
                    )
                })?;
        engine
            .install_planned_views(registry.views.clone(), Some(&planned))
            .await;
        let mut history = History::open(&config.project_dir);
        if let Err(error) = history.record(
            &registry,
            chrono::Utc::now(),
            git_commit(&config.project_dir),
        ) {
            tracing::warn!("cannot record definition history: {error}");
        }
        let status = DefinitionsStatus {
            registry: Arc::new(registry),
            loaded_at: SystemTime::now(),
            errors: Vec::new(),
            fingerprint,
        };
        Ok(Self {
            engine,
            definitions: Arc::new(RwLock::new(status)),
            history: Arc::new(std::sync::Mutex::new(history)),
            reports: Arc::new(reports::ReportCache::new(config.memory().reports)),
            builder: Arc::new(builder::Builder::new(config.rollups.background)),
            gate: Arc::new(gate::Gate::new(
                config.server.max_concurrent_builds,
                Duration::from_millis(config.server.request_timeout_ms / 2),
            )),
            answers: Arc::new(api::Answers::new(config.memory().answers)),
            alerts_judged: Arc::default(),
            config,
        })
    }

    /// Reloads definitions when their files changed; keeps the last valid set on errors.
    /// Returns whether anything changed.
    pub async fn reload_if_changed(&self) -> bool {
        let fingerprint = defs::fingerprint(&self.config.project_dir);
        let unchanged = self.read_definitions().fingerprint == fingerprint;
        if unchanged {
            return false;
        }
        if let Err(error) = self.engine.refresh().await {
            tracing::warn!("cannot list the data root while reloading definitions: {error}");
        }
        let result = defs::load(&self.config, &self.engine).await;
        let views = match &result {
            Ok(registry) => {
                tracing::info!(version = %registry.version, "definitions reloaded");
                Some(registry.views.clone())
            }
            Err(problems) => {
                crate::telemetry::count(
                    "kpi_definition_reload_errors_total",
                    "Definition edits not served because they are invalid.",
                    &[],
                );
                for problem in problems {
                    tracing::warn!("definitions not reloaded: {problem}");
                }
                None
            }
        };
        // Views first, then the registry that uses them.
        if let Some(views) = views {
            self.engine.install_views(views).await;
        }
        self.update_definitions(fingerprint, result);
        true
    }

    fn update_definitions(
        &self,
        fingerprint: String,
        result: std::result::Result<Registry, Vec<Diagnostic>>,
    ) {
        let mut status = match self.definitions.write() {
            Ok(status) => status,
            Err(poisoned) => poisoned.into_inner(),
        };
        status.fingerprint = fingerprint;
        match result {
            Ok(registry) => {
                let mut history = match self.history.lock() {
                    Ok(history) => history,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if let Err(error) = history.record(
                    &registry,
                    chrono::Utc::now(),
                    git_commit(&self.config.project_dir),
                ) {
                    tracing::warn!("cannot record definition history: {error}");
                }
                status.registry = Arc::new(registry);
                status.loaded_at = SystemTime::now();
                status.errors.clear();
            }
            Err(problems) => status.errors = problems,
        }
    }

    /// The report context over `registry` at the current time.
    pub fn report_context<'a>(&'a self, registry: &'a Registry) -> crate::report::Context<'a> {
        crate::report::Context::new(registry, &self.engine, &self.config, chrono::Utc::now())
    }

    /// Judges the alerts of every dashboard for its latest complete week when that report's
    /// inputs changed since the last judgement (new data landed, definitions changed, a new
    /// week became complete), and delivers what fires, once.
    pub async fn judge_alerts(&self) {
        let registry = self.read_definitions().registry;
        let context = self.report_context(&registry);
        if let Err(error) = self.engine.refresh().await {
            tracing::warn!("alerts: cannot list the data root: {error}");
            return;
        }
        for dashboard in registry.dashboards.values() {
            if dashboard.alerts.is_empty() {
                continue;
            }
            let week = context.latest_complete_week(dashboard);
            let tag = context.etag_as_listed(dashboard, week).await;
            let judged = self
                .alerts_judged
                .lock()
                .map(|seen| seen.get(&dashboard.name) == Some(&tag))
                .unwrap_or(false);
            if judged {
                continue;
            }
            match crate::alerts::run(&context, dashboard, week, false).await {
                Ok(outcomes) => {
                    for outcome in outcomes.iter().filter(|o| !o.delivery.is_empty()) {
                        tracing::info!(
                            "alert {} {}: {}",
                            outcome.record.alert,
                            outcome.record.week,
                            outcome.delivery
                        );
                    }
                    // A failed delivery is claimed again by the next evaluation: when data
                    // lands, definitions change or a week completes (or at a restart).
                    if let Ok(mut seen) = self.alerts_judged.lock() {
                        seen.insert(dashboard.name.clone(), tag);
                    }
                }
                Err(error) => tracing::warn!("alerts of {}: {error}", dashboard.name),
            }
        }
    }

    /// Sends the scheduled emails that are due (each at most once; see `email`).
    pub async fn send_due(&self) {
        let registry = self.read_definitions().registry;
        let context = self.report_context(&registry);
        for (name, week) in crate::email::due(&context) {
            let Some(dashboard) = registry.dashboards.get(&name) else {
                continue;
            };
            // Already sent (or being sent): nothing to build.
            let key = crate::email::send_key(
                &name,
                &self.config.calendar().label(week),
                &dashboard.email_to,
            );
            let log = match crate::email::SendLog::open(&self.config) {
                Ok(log) => log,
                Err(error) => {
                    tracing::warn!("scheduled emails: {error}");
                    return;
                }
            };
            if log
                .list()
                .await
                .iter()
                .any(|r| r.key == key && r.status != "failed")
            {
                continue;
            }
            let request = crate::email::Request {
                dashboard,
                week,
                to: Vec::new(),
                eml: None,
                dry_run: false,
                resend: false,
            };
            match crate::email::run(&context, request).await {
                Ok(summary) => {
                    tracing::info!("scheduled email {name}: {}", summary.email.message_id)
                }
                Err(error) => tracing::warn!("scheduled email {name} failed: {error}"),
            }
        }
    }

    /// The link signer, when a signing key is configured.
    pub fn signer(&self) -> Option<crate::links::Signer> {
        self.config.signer()
    }

    /// Returns a snapshot of the definitions status.
    pub fn read_definitions(&self) -> DefinitionsStatus {
        match self.definitions.read() {
            Ok(status) => status.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Builds the router for `state`: the routes, each group with its time limit, then access
/// control, body limits, compression, request ids and logging, and a panic catcher outermost.
pub fn router(state: AppState) -> Router {
    let heavy_timeout = Duration::from_millis(state.config.server.request_timeout_ms);
    let (mut light, mut heavy) = (Router::new(), Router::new());
    for (route, handler) in routes::table() {
        if route.light {
            light = light.route(route.path, handler);
        } else {
            heavy = heavy.route(route.path, handler);
        }
    }
    let light = light.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        LIGHT_TIMEOUT,
    ));
    let heavy = heavy.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        heavy_timeout,
    ));
    light
        .merge(heavy)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn(record_request))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(CompressionLayer::new())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

/// Counts every answer by route template and status, with its latency.
async fn record_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    crate::telemetry::count(
        "kpi_http_requests_total",
        "HTTP answers by route template and status.",
        &[("route", &route), ("status", &status)],
    );
    crate::telemetry::observe(
        "kpi_http_request_duration_seconds",
        "Time to answer, by route template.",
        &[("route", &route)],
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: every counter in the Prometheus text format, with the time since a file
/// last landed in each source.
pub(super) async fn get_metrics_text(State(state): State<AppState>) -> Response {
    let now = chrono::Utc::now();
    for (source, at) in state.engine.latest_landed().await {
        crate::telemetry::gauge(
            "kpi_source_seconds_since_landed",
            "Seconds since a file last landed in the source (newest modification time).",
            &[("source", &source)],
            (now - at).num_milliseconds() as f64 / 1000.0,
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
        .into_response()
}

/// Time limit of cheap pages (health, catalog, index): they never wait behind heavy work.
const LIGHT_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest request body (SQL text, JSON): 1 MiB.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The log span of a request: its id, method and path. Never the query string, which can hold
/// a link signature, and never the `Authorization` header.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path()
    )
}

/// A handler that panicked: a JSON 500 like every other internal error, and one log line.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError(Error::internal(format!("handler panicked: {message}"))).into_response()
}

/// Refuses settings that would expose the server: no API token off loopback, or signed pages
/// without a signing key.
fn check_access(config: &Config) -> Result<()> {
    let server = &config.server;
    if !server.addr.ip().is_loopback() && server.api_token.is_none() {
        return Err(Error::input(
            "insecure_server",
            format!(
                "refusing to listen on {} without an API token: anyone who reaches the port could write snapshots and run SQL. Set server.api_token in kpi.toml or KPI_API_TOKEN (a long random string, e.g. `openssl rand -hex 32`), or listen on 127.0.0.1",
                server.addr
            ),
        ));
    }
    if server.page_access == crate::config::PageAccess::Signed && server.signing_key.is_none() {
        return Err(Error::input(
            "no_signing_key",
            "server.page_access is `signed` (the default off loopback) but no signing key is set: set server.signing_key or KPI_SIGNING_KEY (e.g. `openssl rand -hex 32`), or set page_access = \"open\" to serve report pages to anyone who reaches the port",
        ));
    }
    Ok(())
}

/// A built, bound server, not yet serving.
pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Application {
    /// Loads data and definitions and binds the configured address (port 0 picks a free one).
    pub async fn build(config: Arc<Config>) -> Result<Self> {
        check_access(&config)?;
        let engine = Engine::try_new(Arc::clone(&config))?;
        let state = AppState::try_new(Arc::clone(&config), engine).await?;
        let listener = tokio::net::TcpListener::bind(config.server.addr)
            .await
            .map_err(|error| {
                Error::unavailable(
                    "bind",
                    format!(
                        "cannot listen on {}: {error}; choose another --addr",
                        config.server.addr
                    ),
                )
            })?;
        Ok(Self { listener, state })
    }

    /// Returns the bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until the process is stopped, reloading definitions when files change and
    /// building the latest reports in the background when data or definitions change.
    pub async fn run(self) -> Result<()> {
        // Data versions come from memory from here on: one task lists the data root.
        let engine = self.state.engine.clone();
        engine.refresh_in_background();
        let every = Duration::from_millis(self.state.config.server.refresh_interval_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(error) = engine.list_now().await {
                    tracing::warn!("cannot list the data root: {error}; serving the last listing");
                }
            }
        });
        let state = self.state.clone();
        let interval = Duration::from_millis(state.config.server.reload_interval_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                state.reload_if_changed().await;
            }
        });
        if self.state.config.rollups.background {
            let state = self.state.clone();
            tokio::spawn(async move {
                loop {
                    builder::build_if_changed(&state).await;
                    state.builder.wait(interval).await;
                }
            });
        }
        let scheduler = self.state.clone();
        let every = Duration::from_millis(scheduler.config.server.schedule_interval_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                scheduler.send_due().await;
                scheduler.judge_alerts().await;
            }
        });
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        tracing::info!("stopped: every in-flight request answered");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT; the server then stops accepting and drains in-flight requests.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: draining in-flight requests"),
        () = terminate => tracing::info!("SIGTERM: draining in-flight requests"),
    }
}

pub(super) async fn get_health(
    State(state): State<AppState>,
) -> std::result::Result<Response, ApiError> {
    if let Err(error) = state.engine.refresh().await {
        tracing::warn!("health: cannot list the data root: {error}");
    }
    let definitions = state.read_definitions();
    let tables = state.engine.tables().await;
    let layout = state.engine.layout_problems().await;
    let registry = &definitions.registry;
    let broken_tables = tables.iter().filter(|table| table.error.is_some()).count();
    let (listed, memory, pool) = (
        state.engine.listed(),
        state.config.memory(),
        state.engine.pool_use(),
    );
    let (cluster, cluster_ok) = cluster_health(&state.config).await;
    let healthy =
        definitions.errors.is_empty() && broken_tables == 0 && layout.is_empty() && cluster_ok;
    let loaded_at = definitions
        .loaded_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "data_root": state.config.data_root.url(),
        "definitions": {
            "status": if definitions.errors.is_empty() { "valid" } else { "invalid_edit_ignored" },
            "serving_version": registry.version,
            "loaded_at_unix": loaded_at,
            "metrics": registry.metrics.len(),
            "views": registry.views.iter().map(|view| format!("reporting.{}", view.name)).collect::<Vec<_>>(),
            "dashboards": registry.dashboards.keys().collect::<Vec<_>>(),
            "errors": definitions.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "tables": tables,
        "listing": {
            "refresh_interval_ms": state.config.server.refresh_interval_ms,
            "listings": listed.count,
            "last_listed_unix_ms": listed.at_unix_ms,
        },
        "layout_problems": layout,
        "rollups": {
            "enabled": state.config.rollups.enabled,
            "location": state.engine.rollups().map(|r| r.location().to_string()),
            "activity": state.engine.rollups().map(|r| r.activity()),
            "build": state.builder.status(),
        },
        "work": state.gate.load(),
        "cluster": cluster,
        "memory": {
            "budget_bytes": state.config.engine.memory_limit_mb << 20,
            "query_pool_bytes": memory.query_pool,
            "query_pool_reserved_bytes": pool.reserved_bytes,
            "spilled_bytes": pool.spilled_bytes,
            "kept_reports_bytes": state.reports.bytes(),
            "kept_reports_limit": memory.reports,
            "kept_answers_bytes": state.answers.bytes(),
            "kept_answers_limit": memory.answers,
        },
    });
    Ok(Json(body).into_response())
}

/// The cluster as `/healthz` shows it (`null` without `engine.cluster`), and whether it can run
/// queries (its scheduler answers and has an executor).
async fn cluster_health(config: &Config) -> (serde_json::Value, bool) {
    #[cfg(feature = "cluster")]
    if let Some(url) = &config.engine.cluster {
        let status = crate::cluster::status(url).await;
        let ok = status.reachable && !status.executors.is_empty();
        return (serde_json::to_value(status).unwrap_or_default(), ok);
    }
    let _ = config;
    (serde_json::Value::Null, true)
}

/// Body of `POST /api/v1/sql`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SqlRequest {
    /// One read-only SELECT.
    sql: String,
    /// `json` (default) or `csv`.
    #[schemars(with = "Option<String>")]
    format: Option<Format>,
}

/// The JSON answer of `POST /api/v1/sql`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(super) struct SqlAnswer {
    /// Every column with its Arrow type.
    columns: Vec<SqlColumn>,
    /// One object per row, nulls kept.
    rows: serde_json::Value,
    /// Rows returned.
    row_count: usize,
    /// Whether `server.sql_row_limit` cut the answer.
    truncated: bool,
    /// Time taken, in milliseconds.
    elapsed_ms: u64,
}

/// A column of an SQL answer.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(super) struct SqlColumn {
    /// Name.
    name: String,
    /// Arrow type, as DataFusion writes it.
    #[serde(rename = "type")]
    data_type: String,
}

pub(super) async fn post_sql(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> std::result::Result<Response, ApiError> {
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|error| {
        Error::input(
            "bad_request",
            format!("body must be JSON like {{\"sql\": \"SELECT 1\"}}: {error}"),
        )
    })?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    let format = request
        .format
        .unwrap_or(if wants_csv { Format::Csv } else { Format::Json });
    let limits = QueryLimits {
        timeout: Duration::from_millis(state.config.server.sql_timeout_ms),
        max_rows: state.config.server.sql_row_limit,
    };
    let turn = state.gate.admit("this query").await?;
    let output = state.engine.run_sql(&request.sql, limits).await;
    drop(turn);
    let outcome = match &output {
        Ok(_) => "ok",
        Err(error) if error.code == "query_timeout" => "timeout",
        Err(error) if error.class == crate::error::ErrorClass::Input => "rejected",
        Err(_) => "failed",
    };
    crate::telemetry::count(
        "kpi_sql_queries_total",
        "Analyst SQL queries by outcome (ok, rejected, timeout, failed).",
        &[("outcome", outcome)],
    );
    let output = output?;
    match format {
        Format::Csv => {
            let text = output::render(&output, Format::Csv)?;
            let truncated = if output.truncated { "true" } else { "false" };
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::HeaderName::from_static("x-kpi-truncated"),
                        truncated,
                    ),
                ],
                text,
            )
                .into_response())
        }
        Format::Json | Format::Table => {
            let answer = SqlAnswer {
                columns: output
                    .schema
                    .fields()
                    .iter()
                    .map(|field| SqlColumn {
                        name: field.name().clone(),
                        data_type: field.data_type().to_string(),
                    })
                    .collect(),
                rows: output::to_json_rows(&output.batches)?,
                row_count: output.rows,
                truncated: output.truncated,
                elapsed_ms: output.elapsed.as_millis() as u64,
            };
            Ok(Json(answer).into_response())
        }
    }
}
