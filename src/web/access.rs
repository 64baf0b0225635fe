//! Who may do what, decided once per request before any handler runs.
//!
//! | request | needs |
//! |---|---|
//! | every `POST` (snapshots, SQL), `GET /metrics` | the API token, when one is set (`kpi serve` refuses a non-loopback address without one) |
//! | reports, charts, exports, snapshots | with `page_access = "signed"`: a valid `exp` + `sig` for the page, or the API token |
//! | `/api/v1/metrics/{name}`, `/attribution`, `/sends` (numbers, recipients) | with `page_access = "signed"`: the API token |
//! | `/`, `/healthz`, `/definitions`, `/api/v1/metrics`, `/api/openapi.json` | nothing |
//!
//! A missing or wrong token is 401 with a JSON body; a tampered or moved link is 403 and an
//! expired one 410, with a page that says how to get a fresh link. Tokens and signatures are
//! compared in constant time and never logged.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::config::PageAccess;
use crate::error::Error;
use crate::links::{constant_time_eq, Refusal, Scope};

/// What a request needs to be let in.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Nothing.
    Open,
    /// The API token, when one is configured.
    Token,
    /// A shareable page: in signed mode, a valid signature for its scope or the token.
    Page(Scope),
    /// Numbers outside a shareable page: in signed mode, the token.
    Data,
}

fn classify(method: &Method, path: &str) -> Need {
    if method != Method::GET && method != Method::HEAD {
        return Need::Token;
    }
    if path == "/metrics" {
        return Need::Token;
    }
    if let Some(scope) = Scope::of_path(path) {
        return Need::Page(scope);
    }
    if path.starts_with("/api/v1/metrics/") || path == "/attribution" || path == "/sends" {
        return Need::Data;
    }
    Need::Open
}

/// The middleware: lets the request through or answers 401, 403 or 410.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let need = classify(request.method(), request.uri().path());
    let has_token = bearer_matches(&state, &request);
    let signed = state.config.server.page_access == PageAccess::Signed;
    let refusal = match &need {
        Need::Open => None,
        Need::Token if state.config.server.api_token.is_none() || has_token => None,
        Need::Token => Some(token_required("this request")),
        Need::Data if signed && !has_token => Some(token_required("numbers outside a shared link")),
        Need::Data => None,
        Need::Page(_) if !signed || has_token => None,
        Need::Page(scope) => refuse_signature(&state, scope, &request),
    };
    match refusal {
        None => next.run(request).await,
        Some(response) => response,
    }
}

/// Whether the request carries `Authorization: Bearer <server.api_token>`.
fn bearer_matches(state: &AppState, request: &Request) -> bool {
    let Some(token) = &state.config.server.api_token else {
        return false;
    };
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.expose().as_bytes()))
}

fn token_required(what: &str) -> Response {
    ApiError(Error::unauthorized(format!(
        "{what} needs the API token: send `Authorization: Bearer <server.api_token>` (KPI_API_TOKEN)"
    )))
    .into_response()
}

/// The `exp` and `sig` of a request's query.
pub fn link_params(query: Option<&str>) -> (Option<String>, Option<String>) {
    let mut exp = None;
    let mut sig = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "exp" => exp = Some(value.to_string()),
            "sig" => sig = Some(value.to_string()),
            _ => {}
        }
    }
    (exp, sig)
}

/// The refusal of a page request whose link is not valid for `scope`, if it is not.
fn refuse_signature(state: &AppState, scope: &Scope, request: &Request) -> Option<Response> {
    let Some(signer) = state.signer() else {
        return Some(refusal_page(StatusCode::FORBIDDEN, "no_key", None, scope));
    };
    let (exp, sig) = link_params(request.uri().query());
    match signer.verify(scope, exp.as_deref(), sig.as_deref(), chrono::Utc::now()) {
        Ok(()) => None,
        Err(Refusal::Missing) => Some(refusal_page(StatusCode::FORBIDDEN, "missing", None, scope)),
        Err(Refusal::Tampered) => {
            Some(refusal_page(StatusCode::FORBIDDEN, "tampered", None, scope))
        }
        Err(Refusal::Expired(at)) => {
            let when = chrono::DateTime::from_timestamp(at, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
            Some(refusal_page(StatusCode::GONE, "expired", when, scope))
        }
    }
}

/// The `kpi share` arguments that make a link to `scope`.
fn share_args(scope: &Scope) -> String {
    match scope {
        Scope::Report { dashboard, week } => format!("{dashboard} --week {week}"),
        Scope::Snapshot {
            dashboard,
            week,
            id,
        } => format!("{dashboard} --week {week} --snapshot {id}"),
        Scope::Dashboard { dashboard } => dashboard.clone(),
    }
}

/// A refused link's page (`templates/refused.html`): what happened and how to get a link.
fn refusal_page(
    status: StatusCode,
    reason: &str,
    expired_at: Option<String>,
    scope: &Scope,
) -> Response {
    let html = crate::render::html::render(
        "refused.html",
        minijinja::context! {
            reason => reason,
            expired_at => expired_at,
            share => share_args(scope),
        },
    );
    match html {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => ApiError(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_method_and_path() {
        assert_eq!(classify(&Method::POST, "/api/v1/sql"), Need::Token);
        assert_eq!(
            classify(&Method::POST, "/api/v1/snapshots/d/2026-W45"),
            Need::Token
        );
        assert_eq!(classify(&Method::GET, "/metrics"), Need::Token);
        assert!(matches!(
            classify(&Method::GET, "/reports/d/2026-W45.csv"),
            Need::Page(_)
        ));
        assert!(matches!(
            classify(&Method::GET, "/charts/d/2026-W45/x.png"),
            Need::Page(_)
        ));
        assert_eq!(classify(&Method::GET, "/api/v1/metrics/mqls"), Need::Data);
        assert_eq!(classify(&Method::GET, "/api/v1/metrics"), Need::Open);
        assert_eq!(classify(&Method::GET, "/healthz"), Need::Open);
        assert_eq!(classify(&Method::GET, "/definitions/mqls"), Need::Open);
    }
}
