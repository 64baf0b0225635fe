//! Data health: freshness per source, the banners of an incomplete week or a stale source,
//! landed rows and exact duplicates per table, and reconciliations between metrics. Reads the
//! engine; writes no sentence of the summary (the narrative turns findings into sentences).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::model::{DuplicateCount, Freshness, Health, ReconcileTable};
use super::Context;
use crate::attribution::Settings;
use crate::cache::Cache;
use crate::defs::{Dashboard, Metric, Reconcile};
use crate::error::Error;
use crate::metrics::{self, MetricService};
use crate::time::Period;

/// Landed bytes the rollup store has not counted a table's duplicates over, up to which a
/// table counted before is counted side by side with others (a landed day's files; a first
/// count reads the whole table, one table after another).
const LIGHT_BYTES: u64 = 8 * 1024 * 1024;

impl Context<'_> {
    /// Freshness of every source `dashboard` reads, for `week` (what alerts call stale).
    pub async fn freshness_of(&self, dashboard: &Dashboard, week: Period) -> Vec<Freshness> {
        let complete = self.complete(dashboard, week);
        self.freshness(dashboard, week, complete).await.0
    }

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
        let mut latest: BTreeMap<String, Option<NaiveDate>> = BTreeMap::new();
        for (source, table, column) in reads {
            let day = self
                .engine
                .latest_day_as_listed(&table, &column)
                .await
                .ok()
                .flatten();
            let entry = latest.entry(source).or_insert(None);
            *entry = match (*entry, day) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        latest
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
        let versions = self.engine.data_versions().await;
        let tables: Vec<_> = self
            .engine
            .tables()
            .await
            .into_iter()
            .filter(|table| sources.contains(table.name.split('.').next().unwrap_or_default()))
            .collect();
        // A first build's duplicate counts read whole tables: one table after another (side
        // by side their hash tables would add up). A table the store has seen all but a few
        // files of (a landed day) only counts those: such tables side by side, meanwhile.
        let light = self.light_tables(&tables).await;
        let duplicates = async {
            let version_of = |table: &crate::engine::TableInfo| {
                versions.get(&table.name).cloned().unwrap_or_default()
            };
            let (light_tables, heavy_tables): (Vec<_>, Vec<_>) =
                tables.iter().zip(&light).partition(|(_, light)| **light);
            let side_by_side =
                futures::future::join_all(light_tables.into_iter().map(|(table, _)| {
                    let version = version_of(table);
                    async move { (table, self.duplicates(table, version).await) }
                }));
            let one_by_one = async {
                let mut counts = Vec::new();
                for (table, _) in heavy_tables {
                    counts.push((table, self.duplicates(table, version_of(table)).await));
                }
                counts
            };
            let (mut counts, heavy) = futures::future::join(side_by_side, one_by_one).await;
            counts.extend(heavy);
            // In the tables' order, whichever finished first.
            counts.sort_by_key(|(table, _)| tables.iter().position(|t| t.name == table.name));
            counts
        };
        let rules: Vec<_> = self
            .config
            .conventions
            .rules
            .iter()
            .filter(|rule| sources.contains(rule.table.split('.').next().unwrap_or_default()))
            .cloned()
            .collect();
        let conventions =
            super::conventions::count_conventions(self.engine, &self.calendar, &rules, Some(week));
        let (counts, conventions) = futures::future::join(duplicates, conventions).await;
        for (table, count) in counts {
            let count = match count {
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
            };
            health.duplicates.push(count);
        }
        health.conventions = conventions;
        let findings = health
            .conventions
            .iter()
            .filter_map(super::conventions::finding);
        health.findings.extend(findings.collect::<Vec<_>>());
        for reconcile in &dashboard.reconcile {
            let left = self
                .by_dimension(service, &reconcile.left, &reconcile.by, week, settings)
                .await
                .unwrap_or_default();
            let right = self
                .by_dimension(service, &reconcile.right, &reconcile.by, week, settings)
                .await
                .unwrap_or_default();
            let (table, findings) = reconciliation(reconcile, left, right);
            health.findings.extend(findings);
            health.reconcile.push(table);
        }
        health
    }

    /// Which of `tables` the rollup store has counted duplicates over all but [`LIGHT_BYTES`]
    /// of (none without a store; none never counted).
    async fn light_tables(&self, tables: &[crate::engine::TableInfo]) -> Vec<bool> {
        let names: Vec<String> = tables.iter().map(|table| table.name.clone()).collect();
        let unseen = match self.engine.rollups() {
            Some(rollups) => rollups.unseen_bytes(self.engine, &names).await.ok(),
            None => None,
        };
        match unseen {
            Some(unseen) => unseen
                .iter()
                .map(|bytes| bytes.is_some_and(|bytes| bytes <= LIGHT_BYTES))
                .collect(),
            None => vec![false; tables.len()],
        }
    }

    /// A table's landed rows and how many repeat another row exactly, once per data version
    /// of it: per month of its first date or timestamp column through the rollup store (a
    /// landed file recounts the months it touches), else by reading the whole table.
    async fn duplicates(
        &self,
        info: &crate::engine::TableInfo,
        version: String,
    ) -> crate::Result<(i64, i64)> {
        let table = info.name.as_str();
        // Counted through a rollup store or from the views: kept apart, so that the reference
        // path in the same process (the tests compare the two) counts for itself.
        let counted_by = self.engine.rollups().map(|r| r.location().to_string());
        let key = (table.to_string(), version, counted_by);
        if let Some(known) = duplicate_counts().get(&key) {
            return Ok(known);
        }
        let time_column = info
            .columns
            .iter()
            .find(|(name, kind)| {
                !info.partition_columns.contains(name)
                    && (kind.starts_with("Date") || kind.starts_with("Timestamp"))
            })
            .map(|(name, _)| name.clone());
        if let (Some(rollups), Some(column)) = (self.engine.rollups(), time_column) {
            if let Some(counted) = rollups.duplicates(self.engine, table, &column).await? {
                duplicate_counts().insert(key, counted);
                return Ok(counted);
            }
        }
        let sql = format!(
            "SELECT (SELECT count(*) FROM {table}) AS landed, (SELECT count(*) FROM (SELECT DISTINCT * FROM {table})) AS distinct_rows"
        );
        let batches = self.engine.cached_query_as_listed(&sql).await?;
        use arrow::array::AsArray;
        let batch = batches.first().ok_or_else(|| Error::internal("no row"))?;
        let landed = batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        let distinct = batch
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        let counted = (landed, landed - distinct);
        duplicate_counts().insert(key, counted);
        Ok(counted)
    }
}

/// Two metrics side by side by a dimension: one row per value of the reference metric with
/// the gap share (`right / left - 1`), and a finding for every gap beyond the tolerance.
pub fn reconciliation(
    reconcile: &Reconcile,
    left: Vec<(String, Option<f64>)>,
    right: Vec<(String, Option<f64>)>,
) -> (ReconcileTable, Vec<String>) {
    let right: BTreeMap<String, Option<f64>> = right.into_iter().collect();
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for (value, l) in left {
        let r = right.get(&value).copied().flatten();
        let gap = match (l, r) {
            (Some(l), Some(r)) if l != 0.0 => Some(r / l - 1.0),
            _ => None,
        };
        if let Some(g) = gap.filter(|g| g.abs() > reconcile.tolerance) {
            findings.push(format!(
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
    let table = ReconcileTable {
        label: reconcile.label.clone(),
        left: reconcile.left.clone(),
        right: reconcile.right.clone(),
        by: reconcile.by.clone(),
        rows,
        tolerance: reconcile.tolerance,
    };
    (table, findings)
}

/// Landed and duplicate rows by (table, data version).
type DuplicateCounts = Cache<(String, String, Option<String>), (i64, i64)>;

/// Landed and duplicate row counts by (table, data version, rollup store or none), shared by
/// every report.
fn duplicate_counts() -> &'static DuplicateCounts {
    static COUNTS: std::sync::OnceLock<DuplicateCounts> = std::sync::OnceLock::new();
    COUNTS.get_or_init(|| Cache::new(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_beyond_the_tolerance_are_findings() {
        let reconcile = Reconcile {
            label: "Clicks against sessions".into(),
            left: "clicks".into(),
            right: "sessions".into(),
            by: "platform".into(),
            tolerance: 0.2,
        };
        let left = vec![
            ("google".into(), Some(100.0)),
            ("meta".into(), Some(100.0)),
            ("linkedin".into(), Some(0.0)),
            ("bing".into(), Some(10.0)),
        ];
        let right = vec![("google".into(), Some(85.0)), ("meta".into(), Some(70.0))];
        let (table, findings) = reconciliation(&reconcile, left, right);
        assert_eq!(
            findings,
            vec!["Clicks against sessions: meta has -30% sessions against clicks (tolerance 20%)."]
        );
        let gaps: Vec<Option<f64>> = table.rows.iter().map(|r| r.3).collect();
        assert_eq!(gaps.len(), 4);
        assert!((gaps[0].expect("google") + 0.15).abs() < 1e-12);
        assert_eq!(gaps[2], None, "no gap against zero");
        assert_eq!(gaps[3], None, "no gap against a missing value");
    }
}
