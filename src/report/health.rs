//! Data health: freshness per source, the banners of an incomplete week or a stale source,
//! landed rows and exact duplicates per table, and reconciliations between metrics. Reads the
//! engine; writes no sentence of the summary (the narrative turns findings into sentences).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::model::{DuplicateCount, Freshness, Health, ReconcileTable};
use super::Context;
use crate::attribution::Settings;
use crate::cache::Cache;
use crate::defs::{Dashboard, Metric};
use crate::engine::QueryLimits;
use crate::error::Error;
use crate::metrics::{self, MetricService};
use crate::time::Period;

impl Context<'_> {
    /// Freshness of every source the report places in time, and the banners of the page:
    /// an incomplete week first, then each source whose data stops before the week's end.
    pub(super) async fn freshness(
        &self,
        dashboard: &Dashboard,
        week: Period,
        complete: bool,
    ) -> (Vec<Freshness>, Vec<String>) {
        let label = self.calendar.label(week);
        let latest = self.latest_days(dashboard).await;
        let mut freshness = Vec::new();
        let mut banners = Vec::new();
        if !complete {
            banners.push(format!(
                "{label} is not complete yet: some sources' data for {} is not due until later. Numbers will change.",
                week.last_day()
            ));
        }
        // Freshness is known for the sources whose tables the report's metrics place in time
        // (a source reached only through the attribution touches has no such column here).
        for (source, latest_day) in latest {
            let Some(config) = self.config.sources.get(&source) else {
                continue;
            };
            let covers_week = latest_day.is_some_and(|d| d >= week.last_day());
            let due = self
                .due(&source, week.last_day())
                .map(|d| {
                    d.with_timezone(&self.config.time_zone)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            if !covers_week {
                banners.push(format!(
                    "Source `{source}` has data up to {} only, before the end of {label}: its numbers are incomplete. Ask {}.",
                    latest_day.map(|d| d.to_string()).unwrap_or_else(|| "no date".into()),
                    config.owner
                ));
            }
            freshness.push(Freshness {
                source,
                owner: config.owner.clone(),
                latest: latest_day,
                covers_week,
                due,
            });
        }
        (freshness, banners)
    }

    async fn latest_days(&self, dashboard: &Dashboard) -> BTreeMap<String, Option<NaiveDate>> {
        let mut reads: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut pending: Vec<&Metric> = self
            .metrics_of(dashboard)
            .iter()
            .filter_map(|n| self.registry.metrics.get(*n))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(metric) = pending.pop() {
            if !seen.insert(metric.name.clone()) {
                continue;
            }
            if let crate::defs::MetricKind::Simple {
                table, time_column, ..
            } = &metric.kind
            {
                if !metrics::reads_attribution(self.registry, metric) {
                    reads.insert((metric.source.clone(), table.clone(), time_column.clone()));
                }
            }
            for part in metrics::parts(metric) {
                if let Some(m) = self.registry.metrics.get(&part) {
                    pending.push(m);
                }
            }
        }
        let limits = QueryLimits {
            timeout: std::time::Duration::from_secs(60),
            max_rows: 1,
        };
        let mut latest: BTreeMap<String, Option<NaiveDate>> = BTreeMap::new();
        for (source, table, column) in reads {
            let sql = format!("SELECT CAST(max({column}) AS VARCHAR) AS latest FROM {table}");
            let day = match self.engine.run_sql(&sql, limits).await {
                Ok(output) => output
                    .batches
                    .first()
                    .and_then(|b| {
                        use arrow::array::{Array, AsArray};
                        let column =
                            arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                                .ok()?;
                        let strings = column.as_string::<i32>();
                        (b.num_rows() > 0 && !strings.is_null(0))
                            .then(|| strings.value(0).to_string())
                    })
                    .and_then(|text| self.local_day(&text)),
                Err(_) => None,
            };
            let entry = latest.entry(source).or_insert(None);
            *entry = match (*entry, day) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        latest
    }

    fn local_day(&self, text: &str) -> Option<NaiveDate> {
        if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
            return Some(instant.with_timezone(&self.config.time_zone).date_naive());
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
                return Some(
                    naive
                        .and_utc()
                        .with_timezone(&self.config.time_zone)
                        .date_naive(),
                );
            }
        }
        NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
    }

    /// Landed rows and exact duplicates of every table of the dashboard's sources, and the
    /// dashboard's reconciliations.
    pub(super) async fn health(
        &self,
        service: &MetricService<'_>,
        dashboard: &Dashboard,
        week: Period,
        settings: Settings,
    ) -> Health {
        let sources = self.sources_of(dashboard);
        let mut health = Health::default();
        let limits = QueryLimits {
            timeout: std::time::Duration::from_secs(120),
            max_rows: 1,
        };
        let versions = self.engine.data_versions().await;
        for table in self.engine.tables().await {
            let source = table.name.split('.').next().unwrap_or_default();
            if !sources.contains(source) {
                continue;
            }
            // Counting duplicates reads the whole table: once per data version of it.
            let key = (
                table.name.clone(),
                versions.get(&table.name).cloned().unwrap_or_default(),
            );
            let known = duplicate_counts().get(&key);
            if let Some((rows, duplicates)) = known {
                health.duplicates.push(DuplicateCount {
                    table: table.name.clone(),
                    rows: Some(rows),
                    duplicates: Some(duplicates),
                    error: None,
                });
                continue;
            }
            let sql = format!(
                "SELECT (SELECT count(*) FROM {0}) AS landed, (SELECT count(*) FROM (SELECT DISTINCT * FROM {0})) AS distinct_rows",
                table.name
            );
            let counted = self.engine.run_sql(&sql, limits).await.and_then(|output| {
                use arrow::array::AsArray;
                let batch = output
                    .batches
                    .first()
                    .ok_or_else(|| Error::internal("no row"))?;
                let landed = batch
                    .column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0);
                let distinct = batch
                    .column(1)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0);
                Ok((landed, landed - distinct))
            });
            if let Ok(counted) = &counted {
                duplicate_counts().insert(key, *counted);
            }
            health.duplicates.push(match counted {
                Ok((rows, duplicates)) => DuplicateCount {
                    table: table.name.clone(),
                    rows: Some(rows),
                    duplicates: Some(duplicates),
                    error: None,
                },
                Err(error) => {
                    health.findings.push(format!(
                        "Table {} cannot be read: {}",
                        table.name, error.message
                    ));
                    DuplicateCount {
                        table: table.name.clone(),
                        rows: None,
                        duplicates: None,
                        error: Some(error.message),
                    }
                }
            });
        }
        for reconcile in &dashboard.reconcile {
            let left = self
                .by_dimension(service, &reconcile.left, &reconcile.by, week, settings)
                .await
                .unwrap_or_default();
            let right: BTreeMap<String, Option<f64>> = self
                .by_dimension(service, &reconcile.right, &reconcile.by, week, settings)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
            let mut rows = Vec::new();
            for (value, l) in left {
                let r = right.get(&value).copied().flatten();
                let gap = match (l, r) {
                    (Some(l), Some(r)) if l != 0.0 => Some(r / l - 1.0),
                    _ => None,
                };
                if let Some(g) = gap.filter(|g| g.abs() > reconcile.tolerance) {
                    health.findings.push(format!(
                        "{}: {value} has {:+.0}% {} against {} (tolerance {:.0}%).",
                        reconcile.label,
                        g * 100.0,
                        reconcile.right,
                        reconcile.left,
                        reconcile.tolerance * 100.0
                    ));
                }
                rows.push((value, l, r, gap));
            }
            health.reconcile.push(ReconcileTable {
                label: reconcile.label.clone(),
                left: reconcile.left.clone(),
                right: reconcile.right.clone(),
                by: reconcile.by.clone(),
                rows,
                tolerance: reconcile.tolerance,
            });
        }
        health
    }
}

/// Landed and duplicate rows by (table, data version).
type DuplicateCounts = Cache<(String, String), (i64, i64)>;

/// Landed and duplicate row counts by (table, data version), shared by every report.
fn duplicate_counts() -> &'static DuplicateCounts {
    static COUNTS: std::sync::OnceLock<DuplicateCounts> = std::sync::OnceLock::new();
    COUNTS.get_or_init(|| Cache::new(1024))
}
