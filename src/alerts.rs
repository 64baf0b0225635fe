//! Alerts: judging each `[[alert]]` of a dashboard for a week, recording its state, and
//! delivering a firing alert exactly once (webhook and/or email).
//!
//! - **Judging** ([`judge`], pure): the alert's metric (with its filters) for the week, through
//!   the metric layer, so a maturing cohort (never judged) and a to-date KPI (compared with the
//!   same point of the previous window, never week over week) follow the report's rules.
//! - **States**: per alert and week, `ok`, `firing`, or `resolved` (it fired for this week
//!   before and no longer holds). Each evaluation is appended to the week's history.
//! - **Exactly once**: a delivery is claimed by creating `delivery/<alert>/<week>.json`
//!   create-only, the same claim as the email send log, so retries, restarts and any number of
//!   processes or servers deliver a firing alert once. A delivery that still fails after
//!   `alerts.retries` attempts (backoff 0.5 s, 1 s, 2 s, ...) is recorded as failed and
//!   claimed again by the next evaluation (a conditional update; on a local folder one host
//!   is assumed, as for the send log).
//! - **Webhook**: a JSON POST with `alert`, `dashboard`, `metric`, `week`, `value`,
//!   `condition`, `baseline`, `state`, `report_url` and `text` (so a Slack incoming-webhook URL
//!   works as it is), signed `X-Kpi-Signature: sha256=<hex HMAC-SHA256 of the body>` when
//!   `alerts.signing_key` is set. **Email**: a short plain-text message over the SMTP settings.
//! - **Snooze**: `kpi alerts snooze NAME --until DATE` records `snooze/<alert>.json`; a
//!   snoozed alert is judged and recorded, not delivered, until that day (included).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::defs::{Alert, AlertCondition, Comparison, Dashboard, Good};
use crate::error::{Error, Result};
use crate::metrics::{MetricService, Point, SeriesRequest};
use crate::report::Context;
use crate::time::Period;

/// An alert's state for one week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The condition does not hold.
    Ok,
    /// The condition holds.
    Firing,
    /// It fired for this week before and no longer holds.
    Resolved,
}

/// What judging an alert for a week found. Pure data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verdict {
    /// Whether the condition holds.
    pub fires: bool,
    /// The week's value.
    pub value: Option<f64>,
    /// The base compared with (change conditions) or the target (behind_target).
    pub baseline: Option<f64>,
    /// Why it was not judged, or what it found, in words.
    pub note: Option<String>,
}

/// Judges `condition` on the week's point (`None`: no value) of a metric whose good direction
/// is `good`; `stale` when a source of the metric has no data to the week's end. A maturing
/// cohort is never judged (it never fires); a change condition is judged against `against`
/// (for a to-date KPI, `previous` is the same point of the previous window) and only when the
/// base is at least `min_baseline`.
pub fn judge(
    condition: &AlertCondition,
    point: Option<&Point>,
    good: Good,
    stale: bool,
) -> Verdict {
    let value = point.and_then(|p| p.value);
    let quiet = |note: &str| Verdict {
        fires: false,
        value,
        baseline: None,
        note: Some(note.to_string()),
    };
    if point.is_some_and(|p| p.maturing) {
        return quiet("cohort still maturing: not judged");
    }
    match condition {
        AlertCondition::NoData => Verdict {
            fires: value.is_none() || stale,
            value,
            baseline: None,
            note: match (value, stale) {
                (None, _) => Some("no value for the week".into()),
                (Some(_), true) => Some("a source has no data to the week's end".into()),
                _ => None,
            },
        },
        _ if value.is_none() => quiet("no value for the week"),
        AlertCondition::Below(limit) => Verdict {
            fires: value.is_some_and(|v| v < *limit),
            value,
            baseline: Some(*limit),
            note: None,
        },
        AlertCondition::Above(limit) => Verdict {
            fires: value.is_some_and(|v| v > *limit),
            value,
            baseline: Some(*limit),
            note: None,
        },
        AlertCondition::ChangeBelow {
            ratio,
            against,
            min_baseline,
        }
        | AlertCondition::ChangeAbove {
            ratio,
            against,
            min_baseline,
        } => {
            let comparisons = point.map(|p| &p.comparisons);
            let compared = comparisons.and_then(|c| {
                c.get(against.name()).or_else(|| {
                    (*against == Comparison::Previous)
                        .then(|| c.get(Comparison::PreviousWindow.name()))
                        .flatten()
                })
            });
            let Some(compared) = compared else {
                return quiet("no comparison for the week");
            };
            let (Some(base), Some(change)) = (compared.value, compared.change_ratio) else {
                return quiet("no base to compare with");
            };
            if base.abs() < *min_baseline {
                return Verdict {
                    fires: false,
                    value,
                    baseline: Some(base),
                    note: Some(format!("base {base} below min_baseline {min_baseline}")),
                };
            }
            let fires = match condition {
                AlertCondition::ChangeBelow { .. } => change < *ratio,
                _ => change > *ratio,
            };
            Verdict {
                fires,
                value,
                baseline: Some(base),
                note: Some(format!(
                    "{:+.1}% against {}",
                    change * 100.0,
                    compared.period
                )),
            }
        }
        AlertCondition::BehindTarget(share) => {
            let target = point.and_then(|p| p.target);
            let Some(target) = target.filter(|t| *t != 0.0) else {
                return quiet("no target for the week");
            };
            let status = crate::report::tiles::target_status(value, Some(target), good, *share);
            Verdict {
                fires: status == Some(crate::report::TargetStatus::Behind),
                value,
                baseline: Some(target),
                note: None,
            }
        }
    }
}

/// One evaluation of one alert for one week, as recorded and shown.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlertRecord {
    /// Alert name.
    pub alert: String,
    /// Dashboard.
    pub dashboard: String,
    /// Metric.
    pub metric: String,
    /// Week label.
    pub week: String,
    /// State.
    pub state: State,
    /// The condition in words.
    pub condition: String,
    /// What judging found.
    pub verdict: Verdict,
    /// Snoozed until this day (included): judged, not delivered.
    pub snoozed_until: Option<NaiveDate>,
    /// When it was evaluated.
    pub evaluated_at: DateTime<Utc>,
    /// Every evaluation of this week: when, and the state.
    pub history: Vec<(DateTime<Utc>, State)>,
    /// The delivery of a firing alert, when there is one.
    pub delivery: Option<Delivery>,
}

/// The delivery claim of a firing alert for a week.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivery {
    /// `delivering`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Last error.
    pub error: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The alert log: states, delivery claims and snoozes in a folder or under an S3 prefix.
pub struct AlertLog {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    location: String,
}

impl AlertLog {
    /// The log of `config` (`alerts.log`).
    pub fn open(config: &Config) -> Result<Self> {
        let (store, root, _) = crate::engine::open_store_at(&config.alerts.log, &config.s3)?;
        Ok(Self {
            store,
            root,
            location: config.alerts.log.url(),
        })
    }

    fn path(&self, kind: &str, alert: &str, week: Option<&str>) -> ObjectPath {
        let mut path = self.root.clone().join(kind);
        match week {
            Some(week) => {
                path = path.join(alert).join(format!("{week}.json").as_str());
            }
            None => path = path.join(format!("{alert}.json").as_str()),
        }
        path
    }

    fn unavailable(&self, error: impl std::fmt::Display) -> Error {
        Error::unavailable(
            "alert_log",
            format!("the alert log at {} cannot be used: {error}", self.location),
        )
    }

    async fn read<T: for<'de> Deserialize<'de>>(
        &self,
        path: &ObjectPath,
    ) -> Result<Option<(T, UpdateVersion)>> {
        match self.store.get(path).await {
            Ok(result) => {
                let version = UpdateVersion {
                    e_tag: result.meta.e_tag.clone(),
                    version: result.meta.version.clone(),
                };
                let bytes = result.bytes().await.map_err(|e| self.unavailable(e))?;
                let value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::internal(format!("alert log {path}: {e}")))?;
                Ok(Some((value, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(self.unavailable(error)),
        }
    }

    async fn put<T: Serialize>(
        &self,
        path: &ObjectPath,
        value: &T,
        mode: PutMode,
    ) -> object_store::Result<()> {
        let json = serde_json::to_vec_pretty(value).unwrap_or_default();
        let options = PutOptions {
            mode,
            ..Default::default()
        };
        self.store
            .put_opts(path, PutPayload::from(json), options)
            .await
            .map(|_| ())
    }

    /// The recorded state of an alert for a week.
    pub async fn state(&self, alert: &str, week: &str) -> Result<Option<AlertRecord>> {
        Ok(self
            .read(&self.path("state", alert, Some(week)))
            .await?
            .map(|(r, _)| r))
    }

    async fn write_state(&self, record: &AlertRecord) -> Result<()> {
        let path = self.path("state", &record.alert, Some(&record.week));
        self.put(&path, record, PutMode::Overwrite)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// Claims the delivery of a firing alert for a week: create-only, so one process wins; a
    /// failed delivery is claimed again by a conditional update. `None`: delivered already, or
    /// another process is delivering it.
    async fn claim(&self, alert: &str, week: &str) -> Result<Option<Delivery>> {
        let path = self.path("delivery", alert, Some(week));
        let claim = Delivery {
            status: "delivering".into(),
            attempts: 0,
            error: None,
            updated_at: Utc::now(),
        };
        match self.put(&path, &claim, PutMode::Create).await {
            Ok(()) => return Ok(Some(claim)),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(error) => return Err(self.unavailable(error)),
        }
        let Some((existing, version)) = self.read::<Delivery>(&path).await? else {
            return Ok(None);
        };
        if existing.status != "failed" {
            return Ok(None);
        }
        let retry = Delivery {
            attempts: existing.attempts,
            ..claim
        };
        match self.put(&path, &retry, PutMode::Update(version)).await {
            Ok(()) => Ok(Some(retry)),
            Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(object_store::Error::NotImplemented { .. }) => {
                self.put(&path, &retry, PutMode::Overwrite)
                    .await
                    .map_err(|e| self.unavailable(e))?;
                Ok(Some(retry))
            }
            Err(error) => Err(self.unavailable(error)),
        }
    }

    async fn update_delivery(&self, alert: &str, week: &str, delivery: &Delivery) -> Result<()> {
        self.put(
            &self.path("delivery", alert, Some(week)),
            delivery,
            PutMode::Overwrite,
        )
        .await
        .map_err(|e| self.unavailable(e))
    }

    /// The delivery of an alert for a week, when one was claimed.
    pub async fn delivery(&self, alert: &str, week: &str) -> Result<Option<Delivery>> {
        Ok(self
            .read(&self.path("delivery", alert, Some(week)))
            .await?
            .map(|(d, _)| d))
    }

    /// Snoozes an alert until `until` (included).
    pub async fn snooze(&self, alert: &str, until: NaiveDate) -> Result<()> {
        self.put(
            &self.path("snooze", alert, None),
            &until,
            PutMode::Overwrite,
        )
        .await
        .map_err(|e| self.unavailable(e))
    }

    /// The day an alert is snoozed until, if any.
    pub async fn snoozed_until(&self, alert: &str) -> Result<Option<NaiveDate>> {
        Ok(self
            .read(&self.path("snooze", alert, None))
            .await?
            .map(|(d, _)| d))
    }

    /// Every recorded state of an alert, newest week first.
    pub async fn history(&self, alert: &str) -> Vec<AlertRecord> {
        let prefix = self.root.clone().join("state").join(alert);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .unwrap_or_default();
        let mut records = Vec::new();
        for meta in metas {
            if let Ok(Some((record, _))) = self.read::<AlertRecord>(&meta.location).await {
                records.push(record);
            }
        }
        records.sort_by(|a, b| b.week.cmp(&a.week));
        records
    }
}

/// What an evaluation did for one alert.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The record written.
    pub record: AlertRecord,
    /// `delivered`, `already delivered`, `snoozed`, `failed: ...`, `dry run`, or empty when
    /// not firing.
    pub delivery: String,
}

/// Judges every alert of `dashboard` for `week` over the data as last listed (callers list
/// it: the CLI when it opens the engine, the server before judging), records the states and
/// delivers each firing alert once (`dry_run`: judge only, record and deliver nothing).
pub async fn run(
    context: &Context<'_>,
    dashboard: &Dashboard,
    week: Period,
    dry_run: bool,
) -> Result<Vec<Outcome>> {
    let log = AlertLog::open(context.config)?;
    let label = context.calendar.label(week);
    let service =
        MetricService::new(context.registry, context.engine, context.calendar).as_listed();
    let mut outcomes = Vec::new();
    // Read once, for every `no_data` alert of the run.
    let mut freshness = None;
    for alert in &dashboard.alerts {
        let verdict = evaluate(context, &service, dashboard, alert, week, &mut freshness).await?;
        let now = Utc::now();
        let previous = if dry_run {
            None
        } else {
            log.state(&alert.name, &label).await?
        };
        let state = next_state(
            verdict.fires,
            previous
                .as_ref()
                .map(|r| r.history.as_slice())
                .unwrap_or(&[]),
        );
        let snoozed_until = log
            .snoozed_until(&alert.name)
            .await?
            .filter(|until| *until >= now.with_timezone(&context.config.time_zone).date_naive());
        let mut history = previous.map(|r| r.history).unwrap_or_default();
        history.push((now, state));
        let mut record = AlertRecord {
            alert: alert.name.clone(),
            dashboard: dashboard.name.clone(),
            metric: alert.metric.clone(),
            week: label.clone(),
            state,
            condition: alert.condition.describe(),
            verdict,
            snoozed_until,
            evaluated_at: now,
            history,
            delivery: None,
        };
        let delivery = if dry_run {
            if state == State::Firing {
                "dry run"
            } else {
                ""
            }
            .to_string()
        } else if state != State::Firing {
            String::new()
        } else if snoozed_until.is_some() {
            "snoozed".into()
        } else {
            deliver(context, &log, &mut record).await?
        };
        if !dry_run {
            // A delivery made now is on the record; an earlier one (this week's, before it
            // resolved, or another process's) is read.
            if record.delivery.is_none() {
                record.delivery = log.delivery(&alert.name, &label).await?;
            }
            log.write_state(&record).await?;
        }
        crate::telemetry::count(
            "kpi_alert_evaluations_total",
            "Alert evaluations by state.",
            &[("state", state_name(state))],
        );
        outcomes.push(Outcome { record, delivery });
    }
    Ok(outcomes)
}

/// The state of an alert for a week from its verdict and the week's earlier evaluations:
/// firing while the condition holds; resolved once it no longer holds after having fired for
/// the week; ok otherwise.
pub fn next_state(fires: bool, history: &[(DateTime<Utc>, State)]) -> State {
    let fired = history.iter().any(|(_, s)| *s == State::Firing);
    match (fires, fired) {
        (true, _) => State::Firing,
        (false, true) => State::Resolved,
        (false, false) => State::Ok,
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Ok => "ok",
        State::Firing => "firing",
        State::Resolved => "resolved",
    }
}

/// The verdict of one alert for one week.
async fn evaluate(
    context: &Context<'_>,
    service: &MetricService<'_>,
    dashboard: &Dashboard,
    alert: &Alert,
    week: Period,
    freshness: &mut Option<Vec<crate::report::Freshness>>,
) -> Result<Verdict> {
    let metric = service.metric(&alert.metric)?;
    let compare = match &alert.condition {
        AlertCondition::ChangeBelow { against, .. }
        | AlertCondition::ChangeAbove { against, .. } => {
            vec![*against]
        }
        _ => Vec::new(),
    };
    let attributed = crate::metrics::reads_attribution(context.registry, metric);
    let series = service
        .series(&SeriesRequest {
            metric: alert.metric.clone(),
            from: week,
            to: week,
            by: Vec::new(),
            filters: alert.filter.clone(),
            compare,
            attribution: attributed.then_some(dashboard.attribution),
        })
        .await;
    let series = match series {
        Ok(series) => series,
        // A metric that cannot be computed has no data for the week.
        Err(error) => {
            return Ok(Verdict {
                fires: alert.condition == AlertCondition::NoData,
                value: None,
                baseline: None,
                note: Some(error.message),
            })
        }
    };
    let stale = if alert.condition == AlertCondition::NoData {
        if freshness.is_none() {
            *freshness = Some(context.freshness_of(dashboard, week).await);
        }
        let freshness = freshness.as_deref().unwrap_or_default();
        metric.sources.iter().any(|source| {
            freshness
                .iter()
                .any(|f| &f.source == source && !f.covers_week)
        })
    } else {
        false
    };
    Ok(judge(
        &alert.condition,
        series.points.first(),
        metric.good,
        stale,
    ))
}

/// Delivers a firing alert once: claims it, then posts the webhook and sends the email, with
/// retries; records the outcome.
async fn deliver(
    context: &Context<'_>,
    log: &AlertLog,
    record: &mut AlertRecord,
) -> Result<String> {
    let Some(mut delivery) = log.claim(&record.alert, &record.week).await? else {
        return Ok("already delivered".into());
    };
    let alert = context
        .registry
        .dashboards
        .get(&record.dashboard)
        .and_then(|d| d.alerts.iter().find(|a| a.name == record.alert))
        .ok_or_else(|| Error::internal("alert vanished"))?;
    let report_url = format!(
        "{}/reports/{}/{}",
        context.config.email.public_url.trim_end_matches('/'),
        record.dashboard,
        record.week
    );
    let metric = context.registry.metrics.get(&record.metric);
    let shown = |value: Option<f64>| match metric {
        Some(m) => crate::metrics::format_display(m.unit, m.currency.as_deref(), value, false),
        None => value.map(|v| v.to_string()).unwrap_or_else(|| "—".into()),
    };
    let filter = if alert.filter.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = alert
            .filter
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        format!(" ({})", parts.join(", "))
    };
    let text = format!(
        "kpi alert {}: {}{filter} for {} was {} ({}{}). {report_url}",
        record.alert,
        metric.map(|m| m.label.as_str()).unwrap_or(&record.metric),
        record.week,
        shown(record.verdict.value),
        record.condition,
        record
            .verdict
            .baseline
            .map(|b| format!("; baseline {}", shown(Some(b))))
            .unwrap_or_default()
    );
    let body = serde_json::json!({
        "alert": record.alert,
        "dashboard": record.dashboard,
        "metric": record.metric,
        "filter": alert.filter.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "week": record.week,
        "value": record.verdict.value,
        "condition": record.condition,
        "baseline": record.verdict.baseline,
        "state": "firing",
        "report_url": report_url,
        "text": text,
    });
    let retries = context.config.alerts.retries;
    let mut delay = Duration::from_millis(500);
    let error = loop {
        delivery.attempts += 1;
        let attempt = attempt(context, alert, &body, &text).await;
        match attempt {
            Ok(()) => break None,
            Err(message) => {
                tracing::warn!(
                    "alert {} {}: delivery attempt {} failed: {message}",
                    record.alert,
                    record.week,
                    delivery.attempts
                );
                if delivery.attempts > retries {
                    break Some(message);
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    };
    delivery.updated_at = Utc::now();
    delivery.status = if error.is_none() {
        "delivered"
    } else {
        "failed"
    }
    .into();
    delivery.error = error.clone();
    log.update_delivery(&record.alert, &record.week, &delivery)
        .await?;
    record.delivery = Some(delivery);
    Ok(match error {
        None => {
            tracing::info!("alert {} {} delivered", record.alert, record.week);
            "delivered".into()
        }
        Some(message) => format!("failed: {message}; the next evaluation retries"),
    })
}

/// One delivery attempt: the webhook, then the email (each only where configured). An email
/// is sent by the attempt that also gets the webhook through, so a webhook that fails twice
/// does not mail twice.
async fn attempt(
    context: &Context<'_>,
    alert: &Alert,
    body: &serde_json::Value,
    text: &str,
) -> std::result::Result<(), String> {
    if let Some(url) = &alert.webhook {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let mut request = reqwest::Client::new()
            .post(url)
            .timeout(Duration::from_secs(10))
            .header("content-type", "application/json");
        if let Some(key) = &context.config.alerts.signing_key {
            request = request.header(
                "x-kpi-signature",
                format!("sha256={}", sign(key.expose(), &bytes)),
            );
        }
        let response = request
            .body(bytes)
            .send()
            .await
            .map_err(|e| format!("webhook {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("webhook {url} answered {}", response.status()));
        }
    }
    if !alert.to.is_empty() {
        let subject = format!("kpi alert: {}", alert.name);
        crate::email::send_text(&context.config.email, &alert.to, &subject, text)
            .await
            .map_err(|e| e.message)?;
    }
    Ok(())
}

/// The hex HMAC-SHA256 of `body` under `key` (what `X-Kpi-Signature` carries after `sha256=`).
pub fn sign(key: &str, body: &[u8]) -> String {
    crate::digest::hmac_sha256_hex(key.as_bytes(), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ComparisonValue;
    use std::collections::BTreeMap;

    fn point(value: Option<f64>) -> Point {
        Point {
            period: "2026-W44".into(),
            start: NaiveDate::from_ymd_opt(2026, 10, 26).expect("date"),
            end: NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
            dimensions: BTreeMap::new(),
            value,
            target: None,
            comparisons: BTreeMap::new(),
            maturing: false,
            maturity: None,
        }
    }

    fn with(mut point: Point, name: &str, base: f64) -> Point {
        let value = point.value.expect("value");
        point.comparisons.insert(
            name.into(),
            ComparisonValue {
                period: "2026-W43".into(),
                value: Some(base),
                change: Some(value - base),
                change_ratio: Some((value - base) / base.abs()),
                basis: None,
            },
        );
        point
    }

    #[test]
    fn thresholds_and_changes_with_a_minimum_baseline() {
        let p = point(Some(80.0));
        assert!(judge(&AlertCondition::Below(100.0), Some(&p), Good::Up, false).fires);
        assert!(!judge(&AlertCondition::Above(100.0), Some(&p), Good::Up, false).fires);
        let drop = AlertCondition::ChangeBelow {
            ratio: -0.1,
            against: Comparison::Previous,
            min_baseline: 50.0,
        };
        let fell = with(point(Some(80.0)), "previous", 100.0);
        let verdict = judge(&drop, Some(&fell), Good::Up, false);
        assert!(verdict.fires);
        assert_eq!(verdict.baseline, Some(100.0));
        let small_base = with(point(Some(8.0)), "previous", 10.0);
        assert!(
            !judge(&drop, Some(&small_base), Good::Up, false).fires,
            "base under min_baseline"
        );
        // A to-date KPI's `previous` is the same point of the previous window.
        let to_date = with(point(Some(80.0)), "previous_window", 100.0);
        assert!(judge(&drop, Some(&to_date), Good::Up, false).fires);
    }

    #[test]
    fn maturing_cohorts_never_fire_and_no_data_fires_on_a_gap_or_a_stale_source() {
        let mut cohort = point(Some(0.01));
        cohort.maturing = true;
        let verdict = judge(&AlertCondition::Below(0.5), Some(&cohort), Good::Up, false);
        assert!(!verdict.fires);
        assert_eq!(
            verdict.note.as_deref(),
            Some("cohort still maturing: not judged")
        );
        assert!(judge(&AlertCondition::NoData, Some(&point(None)), Good::Up, false).fires);
        assert!(judge(&AlertCondition::NoData, None, Good::Up, false).fires);
        assert!(
            judge(
                &AlertCondition::NoData,
                Some(&point(Some(1.0))),
                Good::Up,
                true
            )
            .fires
        );
        assert!(
            !judge(
                &AlertCondition::NoData,
                Some(&point(Some(1.0))),
                Good::Up,
                false
            )
            .fires
        );
        assert!(
            !judge(
                &AlertCondition::Below(5.0),
                Some(&point(None)),
                Good::Up,
                false
            )
            .fires
        );
    }

    #[test]
    fn behind_target_follows_the_good_direction() {
        let mut p = point(Some(80.0));
        p.target = Some(100.0);
        assert!(
            judge(
                &AlertCondition::BehindTarget(0.9),
                Some(&p),
                Good::Up,
                false
            )
            .fires
        );
        assert!(
            !judge(
                &AlertCondition::BehindTarget(0.8),
                Some(&p),
                Good::Up,
                false
            )
            .fires
        );
        let mut cost = point(Some(120.0));
        cost.target = Some(100.0);
        assert!(
            judge(
                &AlertCondition::BehindTarget(0.9),
                Some(&cost),
                Good::Down,
                false
            )
            .fires
        );
    }

    #[test]
    fn states_go_ok_firing_resolved_and_fire_again() {
        let at = Utc::now();
        assert_eq!(next_state(false, &[]), State::Ok);
        assert_eq!(next_state(true, &[(at, State::Ok)]), State::Firing);
        let fired = [(at, State::Ok), (at, State::Firing)];
        assert_eq!(next_state(false, &fired), State::Resolved);
        assert_eq!(next_state(true, &fired), State::Firing);
        let resolved = [(at, State::Firing), (at, State::Resolved)];
        assert_eq!(next_state(false, &resolved), State::Resolved);
    }

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
