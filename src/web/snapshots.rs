//! Snapshot pages, taking snapshots over HTTP, and the send log.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::error::ApiError;
use super::pages::{escape, page};
use super::AppState;
use crate::email::SendLog;
use crate::error::Error;
use crate::metrics::format_value;
use crate::snapshot::{differences, Snapshot, Store};

/// Renders a snapshot's frozen page with a banner: when it was taken, newer snapshots of the
/// week, and a per-KPI table of what the live report now says differently, and why.
async fn snapshot_page(
    state: &AppState,
    snapshot: &Snapshot,
    newer: &[Snapshot],
) -> Result<Response, Error> {
    let store = Store::open(&state.config)?;
    let frozen = store
        .file(
            &snapshot.dashboard,
            &snapshot.week,
            &snapshot.id,
            "page.html",
        )
        .await?;
    let frozen = String::from_utf8_lossy(&frozen).to_string();
    let registry = state.read_definitions().registry;
    let context = state.report_context(&registry);
    let mut banner = format!(
        "<div style=\"border:2px solid #1b3a6b;background:#eef3fb;padding:.6rem .9rem;margin:0 0 1rem\" id=\"snapshot\">\
<strong>Snapshot <code data-snapshot=\"{id}\">{id}</code></strong>, taken {taken} and never changed since. \
Attribution {attribution}; definitions {version}. <a href=\"/reports/{d}/{w}\">Live report</a>.",
        id = escape(&snapshot.id),
        taken = escape(&snapshot.taken_at.to_rfc3339()),
        attribution = escape(
            &snapshot
                .report()
                .map(|r| r.attribution.label)
                .unwrap_or_default()
        ),
        version = escape(&snapshot.definitions_version),
        d = escape(&snapshot.dashboard),
        w = escape(&snapshot.week),
    );
    if let Some(previous) = &snapshot.previous {
        banner.push_str(&format!(
            " Replaces <a href=\"/snapshots/{}/{}/{p}\">{p}</a>.",
            escape(&snapshot.dashboard),
            escape(&snapshot.week),
            p = escape(previous)
        ));
    }
    for later in newer {
        banner.push_str(&format!(
            " <strong>Superseded by <a href=\"/snapshots/{}/{}/{id}\" data-newer=\"{id}\">{id}</a></strong> (taken {}).",
            escape(&later.dashboard),
            escape(&later.week),
            escape(&later.taken_at.to_rfc3339()),
            id = escape(&later.id)
        ));
    }
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
    match live {
        Some(Ok(live)) => {
            let versions = state.engine.data_versions().await;
            let changes = differences(snapshot, &live, &registry, &versions)?;
            if changes.is_empty() {
                banner.push_str(
                    "<p data-live=\"same\">The live report still shows the same numbers.</p>",
                );
            } else {
                let rows: String = changes
                    .iter()
                    .map(|c| {
                        format!(
                            "<tr data-changed=\"{m}\"><td><a href=\"/definitions/{m}\">{label}</a></td><td class=\"num\">{then}</td><td class=\"num\">{now}</td><td>{why}</td></tr>",
                            m = escape(&c.metric),
                            label = escape(&c.label),
                            then = format_value(c.unit, c.then),
                            now = format_value(c.unit, c.now),
                            why = escape(&c.why),
                        )
                    })
                    .collect();
                banner.push_str(&format!(
                    "<div class=\"banner\" role=\"alert\" data-live=\"different\">The live numbers now differ from this snapshot for {} KPI(s).</div>\
<table><thead><tr><th>KPI</th><th class=\"num\">In this snapshot</th><th class=\"num\">Live now</th><th>Why</th></tr></thead><tbody>{rows}</tbody></table>",
                    changes.len()
                ));
            }
        }
        Some(Err(error)) => banner.push_str(&format!(
            "<p>The live report cannot be computed now: {}</p>",
            escape(&error.message)
        )),
        None => banner
            .push_str("<p>The dashboard no longer exists; this snapshot is all that remains.</p>"),
    }
    banner.push_str("</div>");
    let html = match frozen.find("<body>") {
        Some(at) => {
            let insert = at + "<body>".len();
            format!("{}\n{banner}{}", &frozen[..insert], &frozen[insert..])
        }
        None => format!("{banner}{frozen}"),
    };
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
    let body = serde_json::json!({
        "id": taken.snapshot.id, "dashboard": taken.snapshot.dashboard, "week": taken.snapshot.week,
        "taken_at": taken.snapshot.taken_at, "previous": taken.snapshot.previous, "created": taken.created,
        "url": format!("/snapshots/{}/{}/{}", taken.snapshot.dashboard, taken.snapshot.week, taken.snapshot.id),
    });
    Ok((status, axum::Json(body)).into_response())
}

/// `GET /sends`: the send log.
pub async fn get_sends(State(state): State<AppState>) -> Response {
    let records = SendLog::new(&state.config.email.send_log).list();
    let rows: String = records
        .iter()
        .map(|r| {
            format!(
                "<tr data-status=\"{status}\"><td>{updated}</td><td><a href=\"/reports/{d}/{w}\">{d} {w}</a></td><td>{to}</td><td><a href=\"/snapshots/{d}/{w}/{snap}\"><code>{snap}</code></a></td><td><code>{mid}</code></td><td><strong>{status}</strong> ({attempts} attempt(s)){error}</td></tr>",
                updated = escape(&r.updated_at.to_rfc3339()),
                d = escape(&r.dashboard),
                w = escape(&r.week),
                to = escape(&r.recipients.join(", ")),
                snap = escape(&r.snapshot),
                mid = escape(&r.message_id),
                status = escape(&r.status),
                attempts = r.attempts,
                error = r.error.as_ref().map(|e| format!("<br><span class=\"muted\">{}</span>", escape(e))).unwrap_or_default(),
            )
        })
        .collect();
    let body = format!(
        "<h1>Sends</h1><p class=\"muted\">Every email sent or attempted, newest first. A dashboard, week and recipient list is sent at most once; \
<code>sending</code> that stays means a process stopped mid-send (see README \"Email\").</p>\
<table><thead><tr><th>Updated</th><th>Report</th><th>Recipients</th><th>Snapshot</th><th>Message-ID</th><th>Status</th></tr></thead><tbody>{}</tbody></table>",
        if rows.is_empty() { "<tr><td colspan=\"6\">Nothing sent yet.</td></tr>".to_string() } else { rows }
    );
    page("Sends", &body).into_response()
}
