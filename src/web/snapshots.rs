//! Snapshot pages, taking snapshots over HTTP, and the send log.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::email::SendLog;
use crate::error::Error;
use crate::render::pages::{self, LiveComparison};
use crate::snapshot::{differences, Snapshot, Store};

/// Renders a snapshot's page: its frozen report (the values stored in the snapshot) with a
/// banner: when it was taken, newer snapshots of the week, and a per-KPI table of what the
/// live report now says differently, and why.
async fn snapshot_page(
    state: &AppState,
    snapshot: &Snapshot,
    newer: &[Snapshot],
) -> Result<Response, Error> {
    let frozen = snapshot.report()?;
    let registry = state.read_definitions().registry;
    let context = state.report_context(&registry);
    let live = match (
        context.dashboard(&snapshot.dashboard),
        context.week(&snapshot.week),
    ) {
        (Ok(_), Ok(_)) => Some(
            super::reports::current_report(state, &snapshot.dashboard, &snapshot.week)
                .await
                .map(|(_, report)| report)
                .map_err(|e| e.0),
        ),
        _ => None,
    };
    let changes = match &live {
        Some(Ok(live)) => {
            let versions = state.engine.data_versions().await;
            differences(snapshot, live, &registry, &versions)?
        }
        _ => Vec::new(),
    };
    let comparison = match &live {
        Some(Ok(_)) if changes.is_empty() => LiveComparison::Same,
        Some(Ok(_)) => LiveComparison::Different(&changes),
        Some(Err(error)) => LiveComparison::Failed(&error.message),
        None => LiveComparison::Gone,
    };
    let html = pages::snapshot_page(snapshot, &frozen, newer, comparison)?;
    Ok(Html(html).into_response())
}

/// `GET /snapshots/{dashboard}/{week}`: the latest snapshot of that week.
pub async fn get_latest(
    State(state): State<AppState>,
    Path((dashboard, week)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let store = Store::open(&state.config)?;
    let all = store.list(&dashboard, &week).await?;
    let latest = all.last().ok_or_else(|| {
        Error::not_found(
            "unknown_snapshot",
            format!("no snapshot of {dashboard} {week}; take one with `kpi snapshot {dashboard} --week {week}` or POST /api/v1/snapshots/{dashboard}/{week}"),
        )
    })?;
    Ok(snapshot_page(&state, latest, &[]).await?)
}

/// `GET /snapshots/{dashboard}/{week}/{id}` (and `{id}.json`).
pub async fn get_snapshot(
    State(state): State<AppState>,
    Path((dashboard, week, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let store = Store::open(&state.config)?;
    let (id, json) = match id.strip_suffix(".json") {
        Some(id) => (id.to_string(), true),
        None => (id, false),
    };
    let snapshot = store.get(&dashboard, &week, &id).await?.ok_or_else(|| {
        Error::not_found(
            "unknown_snapshot",
            format!("no snapshot {id} of {dashboard} {week}"),
        )
    })?;
    if json {
        let body =
            serde_json::to_string_pretty(&snapshot).map_err(|e| Error::internal(e.to_string()))?;
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let newer: Vec<Snapshot> = store
        .list(&dashboard, &week)
        .await?
        .into_iter()
        .filter(|s| s.taken_at > snapshot.taken_at)
        .collect();
    Ok(snapshot_page(&state, &snapshot, &newer).await?)
}

/// `GET /snapshots/{dashboard}/{week}/{id}/charts/{file}`: a frozen chart.
pub async fn get_snapshot_chart(
    State(state): State<AppState>,
    Path((dashboard, week, id, file)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let store = Store::open(&state.config)?;
    let content_type = if file.ends_with(".png") {
        "image/png"
    } else if file.ends_with(".svg") {
        "image/svg+xml"
    } else {
        return Err(
            Error::not_found("unknown_snapshot_file", "charts are NAME.png or NAME.svg").into(),
        );
    };
    let bytes = store
        .file(&dashboard, &week, &id, &format!("charts/{file}"))
        .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// `POST /api/v1/snapshots/{dashboard}/{week}`: takes a snapshot (a no-op for unchanged
/// inputs); 201 with the new one, 200 with the existing one.
pub async fn post_snapshot(
    State(state): State<AppState>,
    Path((dashboard, week)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let registry = state.read_definitions().registry;
    let context = state.report_context(&registry);
    let definition = context.dashboard(&dashboard)?;
    let period = context.week(&week)?;
    let store = Store::open(&state.config)?;
    let computed = super::reports::current_report(&state, &dashboard, &week).await?;
    let taken = store
        .take_with(&context, definition, period, Some(computed))
        .await?;
    let status = if taken.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let s = &taken.snapshot;
    let body = SnapshotTaken {
        id: s.id.clone(),
        dashboard: s.dashboard.clone(),
        week: s.week.clone(),
        taken_at: s.taken_at,
        previous: s.previous.clone(),
        created: taken.created,
        url: format!("/snapshots/{}/{}/{}", s.dashboard, s.week, s.id),
    };
    Ok((status, axum::Json(body)).into_response())
}

/// The answer of `POST /api/v1/snapshots/{dashboard}/{week}`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct SnapshotTaken {
    /// Snapshot id (the report's ETag).
    pub id: String,
    /// Dashboard.
    pub dashboard: String,
    /// Week label.
    pub week: String,
    /// When it was taken.
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// The snapshot of the same week it replaces.
    pub previous: Option<String>,
    /// Whether this call took it (false: the same inputs were snapshotted before).
    pub created: bool,
    /// Its page.
    pub url: String,
}

/// `GET /sends`: the send log.
pub async fn get_sends(State(state): State<AppState>) -> Result<Response, ApiError> {
    let records = SendLog::open(&state.config)?.list().await;
    Ok(Html(pages::sends_page(&records)?).into_response())
}
