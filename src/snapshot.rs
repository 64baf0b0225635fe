//! Snapshots: a report frozen with everything needed to show it again exactly and to explain
//! later differences.
//!
//! A snapshot holds every value of the report, its charts (SVG and PNG), the resolved
//! definitions of every metric it shows with their hashes, the data version of every table it
//! read, the attribution model and when it was taken. Its id is the report's ETag: the hash of
//! the definitions, the dashboard, the week, the attribution settings, the week's completeness
//! and the data versions. Taking a snapshot again with the same inputs therefore finds the same
//! id and does nothing; changed data gives a new id, and the new snapshot records the one it
//! replaces (`previous`), so the old one's page can link to it.
//!
//! Storage is an object store (a local folder or an S3 prefix, `snapshots.root`):
//! `{dashboard}/{week}/{id}/` holds `page.html`, `report.csv`, `charts/{name}.svg|png` and,
//! written last, `snapshot.json`. Every object is written with "create only" semantics, so a
//! snapshot is never modified; a snapshot without `snapshot.json` (an interrupted write) does
//! not exist and is completed by the next attempt.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::defs::{Dashboard, Registry};
use crate::error::{Error, Result};
use crate::render::charts;
use crate::report::{Context, Report};
use crate::time::Period;

/// One frozen report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Id (the report's ETag without quotes).
    pub id: String,
    /// Dashboard.
    pub dashboard: String,
    /// Week label.
    pub week: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// The snapshot of the same week it replaces, if any.
    pub previous: Option<String>,
    /// Definitions version.
    pub definitions_version: String,
    /// Every metric of the report: its hash and resolved definition.
    pub definitions: BTreeMap<String, FrozenDefinition>,
    /// Data version of every table of the sources the report reads.
    pub data_versions: BTreeMap<String, String>,
    /// Chart names (files under `charts/`).
    pub charts: Vec<String>,
    /// Every value.
    pub report: serde_json::Value,
}

/// A metric definition as it was when the snapshot was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrozenDefinition {
    /// Content hash.
    pub hash: String,
    /// Sources of truth.
    pub sources: Vec<String>,
    /// The resolved definition.
    pub definition: serde_json::Value,
}

impl Snapshot {
    /// The report inside.
    pub fn report(&self) -> Result<Report> {
        serde_json::from_value(self.report.clone())
            .map_err(|e| Error::internal(format!("snapshot {}: {e}", self.id)))
    }
}

/// The snapshot store.
pub struct Store {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
}

/// What taking a snapshot did.
pub struct Taken {
    /// The snapshot (new or existing).
    pub snapshot: Snapshot,
    /// Whether it was written now (false: the same inputs were already frozen).
    pub created: bool,
}

impl Store {
    /// Opens the store of `config.snapshots_root`.
    pub fn open(config: &Config) -> Result<Self> {
        let (store, root, _) = crate::engine::open_store_at(&config.snapshots_root, &config.s3)?;
        Ok(Self { store, root })
    }

    fn path(&self, parts: &[&str]) -> ObjectPath {
        let mut path = self.root.clone();
        for part in parts {
            path = path.join(*part);
        }
        path
    }

    async fn put_new(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(()),
            // Written by an earlier, interrupted attempt of the same snapshot: same content.
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(error) => Err(Error::unavailable(
                "snapshot_write",
                format!("cannot write snapshot object {path}: {error}"),
            )),
        }
    }

    /// Reads one snapshot; `None` when it does not exist (or was never completed).
    pub async fn get(&self, dashboard: &str, week: &str, id: &str) -> Result<Option<Snapshot>> {
        let path = self.path(&[dashboard, week, id, "snapshot.json"]);
        match self.store.get(&path).await {
            Ok(result) => {
                let bytes = result.bytes().await.map_err(|e| {
                    Error::unavailable("snapshot_read", format!("cannot read {path}: {e}"))
                })?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| Error::internal(format!("snapshot {path} is not valid: {e}")))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(Error::unavailable(
                "snapshot_read",
                format!("cannot read {path}: {error}"),
            )),
        }
    }

    /// Reads one file of a snapshot (`page.html`, `report.csv`, `charts/x.png`).
    pub async fn file(&self, dashboard: &str, week: &str, id: &str, name: &str) -> Result<Vec<u8>> {
        let mut parts = vec![dashboard, week, id];
        parts.extend(name.split('/'));
        let path = self.path(&parts);
        let result = self.store.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::not_found(
                "unknown_snapshot_file",
                format!("no {name} in snapshot {id}"),
            ),
            other => Error::unavailable("snapshot_read", format!("cannot read {path}: {other}")),
        })?;
        Ok(result
            .bytes()
            .await
            .map_err(|e| Error::unavailable("snapshot_read", e.to_string()))?
            .to_vec())
    }

    /// Every complete snapshot of a week, oldest first.
    pub async fn list(&self, dashboard: &str, week: &str) -> Result<Vec<Snapshot>> {
        let prefix = self.path(&[dashboard, week]);
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(Vec::new()),
                other => Err(Error::unavailable("snapshot_read", other.to_string())),
            })?;
        let mut snapshots = Vec::new();
        for object in objects {
            if object.location.filename() != Some("snapshot.json") {
                continue;
            }
            let parts: Vec<_> = object.location.parts().collect();
            if let Some(id) = parts.len().checked_sub(2).and_then(|i| parts.get(i)) {
                if let Some(snapshot) = self.get(dashboard, week, id.as_ref()).await? {
                    snapshots.push(snapshot);
                }
            }
        }
        snapshots.sort_by(|a, b| (a.taken_at, &a.id).cmp(&(b.taken_at, &b.id)));
        Ok(snapshots)
    }

    /// Freezes the report of `dashboard` for `week`, unless the same inputs are frozen already.
    pub async fn take(
        &self,
        context: &Context<'_>,
        dashboard: &Dashboard,
        week: Period,
    ) -> Result<Taken> {
        self.take_with(context, dashboard, week, None).await
    }

    /// Like [`Store::take`], with a report already computed under ETag `computed.0` (the
    /// server's report cache), which is then frozen instead of computing it again. The snapshot
    /// id is checked first: an existing snapshot costs no report computation at all.
    pub async fn take_with(
        &self,
        context: &Context<'_>,
        dashboard: &Dashboard,
        week: Period,
        computed: Option<(String, Arc<Report>)>,
    ) -> Result<Taken> {
        let etag = match &computed {
            Some((etag, _)) => etag.clone(),
            None => context.etag(dashboard, week).await?,
        };
        let id = etag.trim_matches('"').to_string();
        let label = context.calendar.label(week);
        if let Some(existing) = self.get(&dashboard.name, &label, &id).await? {
            return Ok(Taken {
                snapshot: existing,
                created: false,
            });
        }
        let report = match computed {
            Some((_, report)) => report,
            None => Arc::new(context.build(dashboard, week).await?),
        };
        let previous = self
            .list(&dashboard.name, &label)
            .await?
            .last()
            .map(|s| s.id.clone());
        let sources = context.sources_of(dashboard);
        let data_versions: BTreeMap<String, String> = context
            .engine
            .data_versions()
            .await
            .into_iter()
            .filter(|(table, _)| sources.contains(table.split('.').next().unwrap_or_default()))
            .collect();
        let definitions = frozen_definitions(context.registry, &context.metrics_of(dashboard));
        for chart in &report.charts {
            let svg = charts::svg(chart).map_err(Error::internal)?;
            let png = charts::png(chart).map_err(Error::internal)?;
            self.put_new(
                &self.path(&[
                    &dashboard.name,
                    &label,
                    &id,
                    "charts",
                    &format!("{}.svg", chart.name),
                ]),
                svg.into_bytes(),
            )
            .await?;
            self.put_new(
                &self.path(&[
                    &dashboard.name,
                    &label,
                    &id,
                    "charts",
                    &format!("{}.png", chart.name),
                ]),
                png,
            )
            .await?;
        }
        self.put_new(
            &self.path(&[&dashboard.name, &label, &id, "report.csv"]),
            crate::report::to_csv(&report).into_bytes(),
        )
        .await?;
        self.put_new(
            &self.path(&[&dashboard.name, &label, &id, "page.html"]),
            crate::render::pages::report_page(&report)?.into_bytes(),
        )
        .await?;
        let snapshot = Snapshot {
            id: id.clone(),
            dashboard: dashboard.name.clone(),
            week: label.clone(),
            taken_at: context.now,
            previous,
            definitions_version: context.registry.version.clone(),
            definitions,
            data_versions,
            charts: report.charts.iter().map(|c| c.name.clone()).collect(),
            report: serde_json::to_value(report.as_ref())
                .map_err(|e| Error::internal(e.to_string()))?,
        };
        let json =
            serde_json::to_vec_pretty(&snapshot).map_err(|e| Error::internal(e.to_string()))?;
        // Written last: a snapshot exists only once this object does.
        self.put_new(
            &self.path(&[&dashboard.name, &label, &id, "snapshot.json"]),
            json,
        )
        .await?;
        Ok(Taken {
            snapshot,
            created: true,
        })
    }
}

/// The resolved definitions of `names` and of every metric they are computed from.
pub fn frozen_definitions(
    registry: &Registry,
    names: &[&str],
) -> BTreeMap<String, FrozenDefinition> {
    let mut out = BTreeMap::new();
    let mut pending: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(metric) = registry.metrics.get(&name) else {
            continue;
        };
        pending.extend(crate::metrics::parts(metric));
        out.insert(
            name,
            FrozenDefinition {
                hash: metric.hash.clone(),
                sources: metric.sources.clone(),
                definition: serde_json::to_value(&metric.kind).unwrap_or_default(),
            },
        );
    }
    out
}

/// One KPI whose live value differs from the snapshot's.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// Metric.
    pub metric: String,
    /// Label.
    pub label: String,
    /// Unit.
    pub unit: crate::defs::Unit,
    /// Value in the snapshot.
    pub then: Option<f64>,
    /// Value now.
    pub now: Option<f64>,
    /// `definition` (its definition or a part's changed), `data` (a table it reads changed),
    /// or `definition and data`.
    pub why: String,
}

/// Compares a snapshot with the live report: every tile whose value changed, and why.
pub fn differences(
    snapshot: &Snapshot,
    live: &Report,
    registry: &Registry,
    live_versions: &BTreeMap<String, String>,
) -> Result<Vec<Difference>> {
    let then = snapshot.report()?;
    let tiles = |r: &Report| -> BTreeMap<String, crate::report::Tile> {
        r.primary
            .iter()
            .chain(r.sections.iter().flat_map(|s| s.tiles.iter()))
            .map(|t| (t.metric.clone(), t.clone()))
            .collect()
    };
    let (old, new) = (tiles(&then), tiles(live));
    let mut out = Vec::new();
    for (name, before) in &old {
        let after = new.get(name);
        let now = after.and_then(|t| t.value);
        let same = match (before.value, now) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        let current = frozen_definitions(registry, &[name.as_str()]);
        let frozen: BTreeMap<&String, &FrozenDefinition> = snapshot
            .definitions
            .iter()
            .filter(|(k, _)| current.contains_key(*k) || *k == name)
            .collect();
        let definition_changed = current.len() != frozen.len()
            || current
                .iter()
                .any(|(k, d)| frozen.get(k).is_none_or(|f| f.hash != d.hash));
        let sources: Vec<String> = current
            .values()
            .flat_map(|d| d.sources.iter().cloned())
            .collect();
        let data_changed = live_versions.iter().any(|(table, version)| {
            let source = table.split('.').next().unwrap_or_default().to_string();
            sources.contains(&source) && snapshot.data_versions.get(table) != Some(version)
        }) || snapshot
            .data_versions
            .keys()
            .any(|t| !live_versions.contains_key(t));
        let why = match (definition_changed, data_changed) {
            (true, true) => "definition and data",
            (true, false) => "definition",
            (false, true) => "data",
            (false, false) => "data (a table of another source it reads through a view)",
        };
        out.push(Difference {
            metric: name.clone(),
            label: before.label.clone(),
            unit: before.unit,
            then: before.value,
            now,
            why: why.to_string(),
        });
    }
    Ok(out)
}
