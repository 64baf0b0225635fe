//! The metric catalog pages, server-rendered HTML that reads without JavaScript.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::error::Error;
use crate::render::pages::{self, DefinitionExtras};

/// `GET /definitions`: every metric, one row each.
pub async fn get_catalog(State(state): State<AppState>) -> Result<Response, ApiError> {
    let registry = state.read_definitions().registry;
    Ok(Html(pages::catalog_page(&registry)?).into_response())
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
    let history = match state.history.lock() {
        Ok(history) => history.for_metric(&metric.name),
        Err(poisoned) => poisoned.into_inner().for_metric(&metric.name),
    };
    let extras = DefinitionExtras {
        file: entry["file"].as_str().unwrap_or_default(),
        sql: entry["sql"].as_str().unwrap_or_default(),
        history: &history,
    };
    Ok(Html(pages::definition_page(&registry, metric, extras)?).into_response())
}
