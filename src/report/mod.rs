//! Weekly reports: every number of one dashboard for one week, computed once, then rendered
//! as a page, charts, JSON and CSV.
//!
//! A [`Report`] is plain data: the pages, `kpi report`, snapshots and email all render the
//! same value. A KPI that cannot be computed (its table is unreadable, its source has no rows
//! for the week) becomes an unavailable tile with the reason; the rest of the report is still
//! built.
//!
//! Layout: [`model`] is the report's data; this file is the [`Context`] (which dashboard,
//! which week, is it complete, its ETag); [`build`] assembles a report from the metric layer;
//! [`tiles`], [`chart_data`] and [`narrative`] are pure functions of numbers already computed;
//! [`health`] reads freshness and duplicates; [`export`] writes CSV. Drawing and HTML are
//! `render/`'s. Nothing here speaks HTTP.

mod build;
pub mod chart_data;
pub mod conventions;
pub mod export;
mod health;
pub mod model;
pub mod narrative;
pub mod tiles;

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::defs::{ChartKind, Dashboard, Registry};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metrics;
use crate::time::{Calendar, Grain, Period};
pub use chart_data::step_text;
pub use export::to_csv;
pub use model::*;

/// What a report needs besides the dashboard and week.
pub struct Context<'a> {
    /// Definitions.
    pub registry: &'a Registry,
    /// Engine.
    pub engine: &'a Engine,
    /// Configuration.
    pub config: &'a Config,
    /// The time "now" is (decides completeness).
    pub now: DateTime<Utc>,
    /// The reporting calendar, built once.
    pub calendar: Calendar,
}

impl<'a> Context<'a> {
    /// Starts a report context over the loaded definitions at the instant `now`.
    pub fn new(
        registry: &'a Registry,
        engine: &'a Engine,
        config: &'a Config,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            registry,
            engine,
            config,
            now,
            calendar: config.calendar(),
        }
    }

    /// Returns the dashboard or a not-found error naming the ones that exist.
    pub fn dashboard(&self, name: &str) -> Result<&Dashboard> {
        self.registry.dashboards.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .registry
                .dashboards
                .keys()
                .map(String::as_str)
                .collect();
            Error::not_found(
                "unknown_dashboard",
                format!(
                    "no dashboard named `{name}`; dashboards: {}",
                    known.join(", ")
                ),
            )
        })
    }

    /// Parses a week label (`2026-W47`).
    pub fn week(&self, label: &str) -> Result<Period> {
        let period = self
            .calendar
            .parse_as(label, Grain::Week, false)
            .map_err(|message| Error::input("bad_week", message))?;
        if period.grain() != Grain::Week {
            return Err(Error::input(
                "bad_week",
                format!("`{label}` is not a week; use 2026-W47"),
            ));
        }
        Ok(period)
    }

    /// The dashboard and the week asked for (default: its latest complete week).
    pub fn dashboard_week(&self, name: &str, week: Option<&str>) -> Result<(&Dashboard, Period)> {
        let dashboard = self.dashboard(name)?;
        let period = match week {
            Some(label) => self.week(label)?,
            None => self.latest_complete_week(dashboard),
        };
        Ok((dashboard, period))
    }

    /// The latest week that is complete for every source the dashboard reads.
    pub fn latest_complete_week(&self, dashboard: &Dashboard) -> Period {
        let calendar = self.calendar;
        let mut week = calendar.period_of_instant(self.now, Grain::Week);
        for _ in 0..8 {
            if self.complete(dashboard, week) {
                return week;
            }
            week = calendar.previous(week);
        }
        week
    }

    /// Every metric a dashboard shows, in page order, without repeats.
    pub fn metrics_of<'d>(&self, dashboard: &'d Dashboard) -> Vec<&'d str> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut add = |name: &'d str| {
            if seen.insert(name) {
                out.push(name);
            }
        };
        dashboard.primary.iter().for_each(|m| add(m));
        dashboard
            .sections
            .iter()
            .flat_map(|s| &s.metrics)
            .for_each(|m| add(m));
        for chart in &dashboard.charts {
            match &chart.kind {
                ChartKind::Trend { metric } | ChartKind::Breakdown { metric, .. } => add(metric),
                ChartKind::Funnel { metrics } => metrics.iter().for_each(|m| add(m)),
            }
        }
        if let Some(b) = &dashboard.breakdown {
            b.metrics.iter().for_each(|m| add(m));
        }
        if let Some(m) = &dashboard.attribution_comparison {
            add(m);
        }
        for r in &dashboard.reconcile {
            add(&r.left);
            add(&r.right);
        }
        out
    }

    /// The sources a dashboard's numbers come from.
    pub fn sources_of(&self, dashboard: &Dashboard) -> BTreeSet<String> {
        let mut sources = BTreeSet::new();
        for name in self.metrics_of(dashboard) {
            if let Some(metric) = self.registry.metrics.get(name) {
                sources.extend(metric.sources.iter().cloned());
                if metrics::reads_attribution(self.registry, metric) {
                    // Touches come from other sources: every configured source could matter.
                    sources.extend(self.config.sources.keys().cloned());
                }
            }
        }
        sources
    }

    /// When a source's data for `day` is due: `day + lag_days` at `ready_by`, local.
    fn due(&self, source: &str, day: NaiveDate) -> Option<DateTime<Utc>> {
        let source = self.config.sources.get(source)?;
        let local = (day + Duration::days(i64::from(source.lag_days))).and_time(source.ready_by);
        use chrono::TimeZone;
        self.config
            .time_zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether every source the dashboard reads has its data for the whole week due by now.
    pub fn complete(&self, dashboard: &Dashboard, week: Period) -> bool {
        self.sources_of(dashboard).iter().all(|source| {
            self.due(source, week.last_day())
                .is_some_and(|due| due <= self.now)
        })
    }

    /// A tag for everything a report depends on: definitions, the dashboard, the week, the
    /// attribution settings, whether the week is complete, and the data version of every
    /// table of the sources it reads. Costs one listing of the data root, no query.
    pub async fn etag(&self, dashboard: &Dashboard, week: Period) -> Result<String> {
        self.engine.refresh().await?;
        Ok(self.etag_as_listed(dashboard, week).await)
    }

    /// The [`Context::etag`] of the data as last listed (no listing).
    pub async fn etag_as_listed(&self, dashboard: &Dashboard, week: Period) -> String {
        let sources = self.sources_of(dashboard);
        let versions = self.engine.data_versions().await;
        let mut hasher = Sha256::new();
        hasher.update(self.registry.version.as_bytes());
        hasher.update(dashboard.hash.as_bytes());
        hasher.update(self.calendar.label(week).as_bytes());
        hasher.update(format!("{:?}", dashboard.attribution).as_bytes());
        hasher.update([u8::from(self.complete(dashboard, week))]);
        for (table, version) in versions {
            let source = table.split('.').next().unwrap_or_default();
            if sources.contains(source) {
                hasher.update(table.as_bytes());
                hasher.update(version.as_bytes());
            }
        }
        format!("\"{}\"", crate::digest::short_hex(&hasher.finalize(), 12))
    }
}
