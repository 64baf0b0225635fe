//! The background build of `kpi serve`: at start, and whenever a file lands or a definition
//! changes, the latest complete week of every dashboard and every report already kept are
//! computed again (through the rollup store, so only what the change can affect is queried),
//! before anyone asks for them. Each tick lists the data root once; a request that finds its
//! report out of date wakes the build at once.
//!
//! While a build runs, a report whose data changed keeps serving its last complete version with
//! a "refreshing" banner (see `reports`), never a half-built one; a report nobody has seen yet is
//! computed once, whether the build or a request gets to it first. Progress (which report, how
//! many of how many, what the store did) is on `/healthz` and in the log.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

use super::reports::compute;
use super::AppState;
use crate::rollup::Activity;

/// Where the background build is, for `/healthz`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildStatus {
    /// `idle`, `building`, or `off` (`rollups.background = false`).
    pub state: &'static str,
    /// What started the current or last build: the start, the tables whose files changed, or
    /// the definitions.
    pub reason: Option<String>,
    /// When the current build started.
    pub started_at: Option<DateTime<Utc>>,
    /// Reports finished in the current build.
    pub done: usize,
    /// Reports the current build computes.
    pub total: usize,
    /// The report being computed (`dashboard week`).
    pub current: Option<String>,
    /// The last finished build.
    pub last: Option<FinishedBuild>,
}

/// What one finished build did.
#[derive(Debug, Clone, Serialize)]
pub struct FinishedBuild {
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How long it took.
    pub seconds: f64,
    /// Reports it computed (or found current).
    pub reports: usize,
    /// What the rollup store did meanwhile (`None` with the store off).
    pub store: Option<Activity>,
    /// Reports that could not be computed, with the reason.
    pub failed: Vec<String>,
}

/// The state of the background build, shared by the build task and the handlers.
#[derive(Debug, Default)]
pub struct Builder {
    status: Mutex<BuildStatus>,
    /// Whether builds run at all (`rollups.background`).
    enabled: bool,
    /// Set by a request that found its report out of date; cleared when a build starts.
    pending: AtomicBool,
    wake: Notify,
    /// The definitions version and table versions the last build saw (for its reason).
    built_for: Mutex<Option<(String, BTreeMap<String, String>)>>,
    /// Reports (dashboard, week, ETag) the last builds could not compute: requests compute
    /// those themselves, so they see the error instead of an old page.
    failed: Mutex<HashSet<(String, String, String)>>,
}

impl Builder {
    /// A builder whose state reads `off` when background builds are turned off.
    pub fn new(enabled: bool) -> Self {
        let builder = Self {
            enabled,
            ..Self::default()
        };
        builder.update(|status| status.state = if enabled { "idle" } else { "off" });
        builder
    }

    /// The current status.
    pub fn status(&self) -> BuildStatus {
        self.status
            .lock()
            .map(|status| status.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Asks the build task to bring the report (dashboard, week) under `etag` up to date now.
    /// Returns the instant the report's refresh counts from when the build will compute it, or
    /// `None` when the caller must compute it itself (background builds off, or the build
    /// already failed on it).
    pub fn refresh_soon(&self, dashboard: &str, week: &str, etag: &str) -> Option<DateTime<Utc>> {
        if !self.enabled {
            return None;
        }
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.contains(&(dashboard.to_string(), week.to_string(), etag.to_string())) {
            return None;
        }
        drop(failed);
        let since = self.status().started_at.unwrap_or_else(Utc::now);
        self.pending.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        Some(since)
    }

    /// Waits until `interval` has passed or a request asked for a build.
    pub async fn wait(&self, interval: std::time::Duration) {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = self.wake.notified() => {}
        }
    }

    fn update(&self, change: impl FnOnce(&mut BuildStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut status);
    }
}

/// Computes every report that is out of date: each dashboard's latest complete week and every
/// report kept in the cache whose ETag changed (data landed, definitions changed, a week
/// became complete). Returns whether it built anything.
pub async fn build_if_changed(state: &AppState) -> bool {
    let builder = &state.builder;
    builder.pending.store(false, Ordering::SeqCst);
    if let Err(error) = state.engine.refresh().await {
        tracing::warn!("background build: cannot list the data root: {error}");
        return false;
    }
    let registry = state.read_definitions().registry;
    let versions = state.engine.data_versions().await;
    let context = state.report_context(&registry);
    let mut wanted: Vec<(String, String)> = registry
        .dashboards
        .values()
        .map(|dashboard| {
            let week = context.latest_complete_week(dashboard);
            (dashboard.name.clone(), context.calendar.label(week))
        })
        .collect();
    for key in state.reports.keys() {
        if !wanted.contains(&key) {
            wanted.push(key);
        }
    }
    let mut plan = Vec::new();
    {
        let failed = builder
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (dashboard, week) in wanted {
            let (Ok(definition), Ok(period)) = (context.dashboard(&dashboard), context.week(&week))
            else {
                continue;
            };
            let etag = context.etag_as_listed(definition, period).await;
            let key = (dashboard, week);
            let gave_up = failed.contains(&(key.0.clone(), key.1.clone(), etag.clone()));
            if !state.reports.holds(&key, &etag) && !gave_up {
                plan.push((key, definition, period, etag));
            }
        }
    }
    if plan.is_empty() {
        return false;
    }
    let reason = {
        let built_for = builder.built_for.lock().unwrap_or_else(|p| p.into_inner());
        match built_for.as_ref() {
            None => "start".to_string(),
            Some((definitions, _)) if *definitions != registry.version => {
                "definitions changed".to_string()
            }
            Some((_, tables)) if *tables != versions => {
                let mut changed: Vec<&str> = versions
                    .iter()
                    .filter(|(name, version)| tables.get(*name) != Some(*version))
                    .map(|(name, _)| name.as_str())
                    .collect();
                changed.extend(
                    tables
                        .keys()
                        .filter(|name| !versions.contains_key(*name))
                        .map(String::as_str),
                );
                format!("files changed in {}", changed.join(", "))
            }
            Some(_) => {
                "reports out of date (a week became complete, or a new week was opened)".to_string()
            }
        }
    };
    let started = Instant::now();
    let before = state.engine.rollups().map(|r| r.activity());
    builder.update(|status| {
        status.state = "building";
        status.reason = Some(reason.clone());
        status.started_at = Some(Utc::now());
        status.done = 0;
        status.total = plan.len();
        status.current = None;
    });
    tracing::info!("background build: {} reports ({reason})", plan.len());
    let mut failed = Vec::new();
    let total = plan.len();
    for (done, ((dashboard, week), definition, period, etag)) in plan.into_iter().enumerate() {
        builder.update(|status| {
            status.done = done;
            status.current = Some(format!("{dashboard} {week}"));
        });
        let one = Instant::now();
        let key = (dashboard.clone(), week.clone());
        let result = state
            .reports
            .get_or_build(key, &etag, || async {
                let _turn = state.gate.wait().await?;
                compute(&context, definition, period, &etag).await
            })
            .await;
        match result {
            Ok(_) => tracing::info!(
                "background build [{}/{total}] {dashboard} {week} in {} ms",
                done + 1,
                one.elapsed().as_millis()
            ),
            Err(error) => {
                tracing::warn!("background build: {dashboard} {week}: {}", error.0);
                failed.push(format!("{dashboard} {week}: {}", error.0.message));
                builder
                    .failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((dashboard, week, etag));
            }
        }
    }
    let store = state.engine.rollups().map(|r| r.activity());
    let store = match (before, store) {
        (Some(before), Some(after)) => Some(Activity {
            reused: after.reused - before.reused,
            computed: after.computed - before.computed,
            queries: after.queries - before.queries,
            rebuilt_files: after.rebuilt_files - before.rebuilt_files,
            extended: after.extended - before.extended,
        }),
        _ => None,
    };
    let finished = FinishedBuild {
        finished_at: Utc::now(),
        seconds: started.elapsed().as_secs_f64(),
        reports: total,
        store,
        failed,
    };
    tracing::info!(
        "background build: {} reports in {:.1} s{}",
        finished.reports,
        finished.seconds,
        finished
            .store
            .map(|a| format!(
                "; rollups: {} partitions reused, {} computed in {} queries",
                a.reused, a.computed, a.queries
            ))
            .unwrap_or_default()
    );
    *state
        .builder
        .built_for
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((registry.version.clone(), versions));
    state.builder.update(|status| {
        status.state = "idle";
        status.done = finished.reports;
        status.current = None;
        status.started_at = None;
        status.last = Some(finished);
    });
    true
}
