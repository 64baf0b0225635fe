//! `/alerts` and `GET /api/v1/alerts`: every alert of every dashboard with its condition, where
//! it delivers (a webhook URL is never shown: Slack puts its secret in it), its snooze and its
//! recorded states per week, newest first. Reads the alert log; judges nothing.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::AppState;
use crate::alerts::{AlertLog, AlertRecord};

/// One alert as listed.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct AlertStatus {
    /// Name.
    pub name: String,
    /// Dashboard.
    pub dashboard: String,
    /// Metric.
    pub metric: String,
    /// Filters, `dimension = value`.
    pub filter: Vec<String>,
    /// The condition in words.
    pub condition: String,
    /// Whether it posts to a webhook.
    pub webhook: bool,
    /// Email recipients.
    pub to: Vec<String>,
    /// Snoozed until (included).
    pub snoozed_until: Option<chrono::NaiveDate>,
    /// Recorded weeks, newest first.
    pub history: Vec<AlertRecord>,
}

async fn statuses(state: &AppState) -> Result<Vec<AlertStatus>, ApiError> {
    let registry = state.read_definitions().registry;
    let log = AlertLog::open(&state.config)?;
    let mut out = Vec::new();
    for dashboard in registry.dashboards.values() {
        for alert in &dashboard.alerts {
            out.push(AlertStatus {
                name: alert.name.clone(),
                dashboard: dashboard.name.clone(),
                metric: alert.metric.clone(),
                filter: alert
                    .filter
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect(),
                condition: alert.condition.describe(),
                webhook: alert.webhook.is_some(),
                to: alert.to.clone(),
                snoozed_until: log.snoozed_until(&alert.name).await?,
                history: log.history(&alert.name).await,
            });
        }
    }
    Ok(out)
}

/// `GET /api/v1/alerts`.
pub async fn get_alerts(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(statuses(&state).await?).into_response())
}

/// `GET /alerts`.
pub async fn get_alerts_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    let alerts = statuses(&state).await?;
    let value = serde_json::to_value(&alerts).unwrap_or_default();
    let page = crate::render::html::render(
        "alerts.html",
        minijinja::context! { title => "Alerts", alerts => minijinja::Value::from_serialize(&value) },
    )?;
    Ok(Html(page).into_response())
}
