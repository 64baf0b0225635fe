//! The query engine: one [`SessionContext`] over the landed Parquet, kept in step with storage.
//!
//! [`Engine`] is a cheap-to-clone façade built once per process. It owns the object store, the
//! table catalog (one SQL schema per source, one table per folder), the `reporting` views and a
//! dedicated runtime for CPU-heavy query execution, so that a long query never starves the
//! HTTP server's I/O threads. It knows nothing about HTTP, metrics or reports.
//!
//! Freshness: a command lists the data root before it queries (one LIST; cheap on a local disk
//! and a few requests on S3). `kpi serve` lists it in the background instead, every
//! `data.refresh_interval_ms` ([`Engine::refresh_in_background`]), so no request waits for or
//! causes a LIST: data versions and ETags come from memory. Each listing hands every table's
//! files to DataFusion's list-files cache, so scans read exactly the files of the version the
//! catalog holds (no scan lists again, and none sees a file the ETag does not count). A new
//! table, a vanished table or a changed schema re-registers the table and re-plans the views.
//! Every new file's Parquet footer is read once to check that a table's files agree.

pub mod aggregate;
pub mod cancel;
pub mod discovery;
mod materialize;
mod reach;
pub mod safety;
pub use reach::{Reach, NOWHERE};
mod sandbox;
mod schema;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, CachedFileList, TableScopedPath,
};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore};

use crate::config::Config;
use crate::error::{Error, Result};
use discovery::{group_tables, DiscoveredTable, Stray};
pub use sandbox::Sandbox;
use schema::{consensus_schema, read_file_schema, UnavailableTable};
use store::{list_all, open_store};
pub use store::{open_store_at, register_data_store};

/// Windows kept at once (see [`Engine::windowed`]): a landing's report keeps about ten.
const KEPT_WINDOWS: usize = 16;

/// Parquet footers read at once when listing: each is one small read that waits on storage (a
/// blocking thread per local read, a request per object on S3). 32 at once was no faster on a
/// local disk: it only started more blocking threads.
const FOOTERS_AT_ONCE: usize = 8;

/// A window's days, for names and logs.
fn window_label(window: &aggregate::Bucket) -> String {
    format!("{}..{}", window.start_day, window.end_day)
}

/// Name of the SQL schema that holds the views of `queries/*.sql`.
pub const REPORTING_SCHEMA: &str = "reporting";
const CATALOG: &str = "datafusion";

/// Limits for one analyst query.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Wall-clock limit; the query is cancelled when it is reached.
    pub timeout: Duration,
    /// Rows returned at most; the output says when rows were cut.
    pub max_rows: usize,
}

/// The result of one query.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows, at most `max_rows`.
    pub batches: Vec<RecordBatch>,
    /// Number of rows in `batches`.
    pub rows: usize,
    /// Whether the query had more rows than `max_rows`.
    pub truncated: bool,
    /// Time from planning to the last row.
    pub elapsed: Duration,
}

/// What a user sees about one landed table (for `/healthz` and `kpi check`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableInfo {
    /// SQL name `source.table`.
    pub name: String,
    /// Number of Parquet files.
    pub files: usize,
    /// Total bytes of those files.
    pub bytes: u64,
    /// Hive partition columns (typed as strings).
    pub partition_columns: Vec<String>,
    /// Columns and their Arrow types.
    pub columns: Vec<(String, String)>,
    /// Changes whenever a file of the table is added, removed or replaced.
    pub data_version: String,
    /// Why the table cannot be queried, if it cannot.
    pub error: Option<String>,
}

/// One `reporting` view: its name and SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewDef {
    /// Name inside the `reporting` schema.
    pub name: String,
    /// The `SELECT` that defines it.
    pub sql: String,
}

/// The cheap-to-clone query engine façade.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    ctx: SessionContext,
    /// The serving session's catalog with Parquet filter pushdown (see `Engine::try_new`).
    pushdown: SessionContext,
    /// The serving session and `pushdown`, each planning one partition per query (see
    /// [`Engine::serving_for`]).
    narrow: SessionContext,
    narrow_pushdown: SessionContext,
    /// `narrow` without the logical optimizer, for aggregates over a kept window (see
    /// [`Engine::aggregate_over_window`]).
    lean: SessionContext,
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    url_base: String,
    catalog: tokio::sync::Mutex<CatalogState>,
    cpu: CpuRuntime,
    /// Computed attribution credits, dropped when data or views change.
    attribution: Arc<crate::attribution::table::Cache>,
    /// The rollup store (`None` with `rollups.enabled = false`).
    rollups: Option<Arc<crate::rollup::Rollups>>,
    /// Bumped whenever a table's files, a table's schema or the views change.
    generation: std::sync::atomic::AtomicU64,
    /// Bumped whenever a landed table is registered again or removed: a plan made before
    /// may read a table the catalog no longer serves.
    tables_epoch: std::sync::atomic::AtomicU64,
    /// The build session of a generation (see `materialize`).
    build: tokio::sync::Mutex<Option<(u64, SessionContext)>>,
    /// Relations' rows within a window, the [`KEPT_WINDOWS`] last used of a generation (see
    /// [`Engine::windowed`]).
    windows: std::sync::Mutex<(u64, crate::cache::Cache<String, Arc<materialize::KeptView>>)>,
    /// Every table's data version (a hash of its files' paths, sizes and times) as last
    /// listed; read without waiting for a listing.
    versions: std::sync::RwLock<Arc<BTreeMap<String, String>>>,
    /// Whether a background task lists the data root (then [`Engine::refresh`] does not).
    background: std::sync::atomic::AtomicBool,
    /// One listing at a time, applied in order.
    listing: tokio::sync::Mutex<()>,
    /// When the last listing finished, and how many there were.
    listed: std::sync::Mutex<Listed>,
}

/// When the data root was last listed.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Listed {
    /// Listings since the process started.
    pub count: u64,
    /// When the last one finished (Unix milliseconds; 0 before the first).
    pub at_unix_ms: i64,
}

#[derive(Default)]
struct CatalogState {
    tables: BTreeMap<String, LoadedTable>,
    file_schemas: HashMap<FileKey, std::result::Result<SchemaRef, String>>,
    strays: Vec<Stray>,
    root_missing: bool,
    views: Vec<ViewDef>,
    view_schemas: HashMap<String, SchemaRef>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct FileKey {
    path: String,
    size: u64,
    modified_micros: i64,
}

impl FileKey {
    fn of(meta: &ObjectMeta) -> Self {
        Self {
            path: meta.location.to_string(),
            size: meta.size,
            modified_micros: meta.last_modified.timestamp_micros(),
        }
    }
}

struct LoadedTable {
    discovered: DiscoveredTable,
    schema: SchemaRef,
    error: Option<String>,
    structure: String,
}

/// The query pool's use at one moment ([`Engine::pool_use`]).
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    /// Bytes reserved in the query pool by running queries and kept views.
    pub reserved_bytes: usize,
    /// Bytes in the spill files of running queries.
    pub spilled_bytes: u64,
}

/// How many of the largest memory consumers a query out of memory names.
const TOP_CONSUMERS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(5).unwrap();

/// A runtime for query execution, shut down without blocking when the engine is dropped
/// (dropping a runtime inside another one would panic).
struct CpuRuntime(Option<tokio::runtime::Runtime>);

impl Drop for CpuRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Engine {
    /// Builds the engine for `config`: object store, runtime environment and session.
    /// Touches no storage; the first [`Engine::refresh`] lists the data root.
    pub fn try_new(config: Arc<Config>) -> Result<Self> {
        let (store, root, url_base) = open_store(&config)?;
        let memory = config.memory().query_pool;
        // Fair: each sort or aggregate that can spill gets its share of what the unspillable
        // state (hash join build sides, kept views) leaves, and spills past it to files in the
        // OS temporary directory (`TMPDIR`); a query out of memory names its largest consumers.
        let pool = TrackConsumersPool::new(FairSpillPool::new(memory), TOP_CONSUMERS);
        let runtime: Arc<RuntimeEnv> = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            // Filled by every listing (`Engine::list_now`) with the files it found, so it never
            // hides a landed file and never expires on its own.
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_list_files_cache_limit(LIST_FILES_CACHE_BYTES)
                    .with_list_files_cache_ttl(None),
            )
            .build_arc()?;
        // The same store instance that lists the data root reads it.
        store::register_store(&config, &runtime, Arc::clone(&store))?;
        let mut session_config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, "public");
        if config.engine.target_partitions > 0 {
            session_config = session_config.with_target_partitions(config.engine.target_partitions);
        }
        let state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(cancel::YieldingJoins))
            .build();
        let ctx = SessionContext::new_with_state(on_cluster(&config, state)?);
        let attribution = Arc::new(crate::attribution::table::Cache::default());
        ctx.register_udtf(
            crate::attribution::table::TABLE_NAME,
            Arc::new(crate::attribution::table::AttributionFunction::new(
                &config.attribution,
                Arc::clone(&attribution),
            )),
        );
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let rollups = if config.rollups.enabled {
            Some(Arc::new(crate::rollup::Rollups::open(&config)?))
        } else {
            None
        };
        let cpu = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("kpi-query")
            .enable_all()
            .build()?;
        // The same catalog, with filters evaluated while Parquet pages are decoded: a join's
        // filter from its small side (the landed week's form submits) then skips the other
        // side's rows before they are de-duplicated. Only for misses of relations that join
        // tables (narrow ones, and runs of wide ones): on small files and whole views it costs
        // more than it saves.
        let mut pushdown_state = ctx.state();
        let parquet = &mut pushdown_state.config_mut().options_mut().execution.parquet;
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
        let pushdown = SessionContext::new_with_state(pushdown_state);
        let (narrow, narrow_pushdown) = (one_partition(&ctx), one_partition(&pushdown));
        let lean = SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(narrow.state())
                .with_optimizer_rules(Vec::new())
                .build(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                ctx,
                pushdown,
                narrow,
                narrow_pushdown,
                lean,
                store,
                root,
                url_base,
                catalog: tokio::sync::Mutex::new(CatalogState::default()),
                cpu: CpuRuntime(Some(cpu)),
                attribution,
                rollups,
                generation: std::sync::atomic::AtomicU64::new(0),
                tables_epoch: std::sync::atomic::AtomicU64::new(0),
                build: tokio::sync::Mutex::new(None),
                windows: std::sync::Mutex::new((0, crate::cache::Cache::new(KEPT_WINDOWS))),
                versions: std::sync::RwLock::default(),
                background: std::sync::atomic::AtomicBool::new(false),
                listing: tokio::sync::Mutex::new(()),
                listed: std::sync::Mutex::default(),
            }),
        })
    }

    /// Returns the configuration the engine was built with.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    /// The rollup store, when it is enabled.
    pub fn rollups(&self) -> Option<&Arc<crate::rollup::Rollups>> {
        self.inner.rollups.as_ref()
    }

    /// The session every query runs in.
    pub(crate) fn session(&self) -> &SessionContext {
        &self.inner.ctx
    }

    /// The Parquet footer of `meta` (this version of the file) when the runtime's metadata
    /// cache has it: listing reads every new file's footer into it.
    pub(crate) fn cached_footer(
        &self,
        meta: &ObjectMeta,
    ) -> Option<Arc<parquet::file::metadata::ParquetMetaData>> {
        use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
        let cache = self
            .inner
            .ctx
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache();
        let entry = cache.get(&meta.location)?;
        if !entry.is_valid_for(meta) {
            return None;
        }
        let footer = entry
            .file_metadata
            .as_any()
            .downcast_ref::<CachedParquetMetaData>()?;
        Some(Arc::clone(footer.parquet_metadata()))
    }

    /// The session a miss of the rollup store is computed in, when not the serving session
    /// itself (`None`): with filters pushed into Parquet decoding for relations that join
    /// tables (`pushdown`), planned as one partition for a narrow miss over little data
    /// (`small`: a report computes dozens of them side by side, which keeps the cores busy;
    /// splitting each in two costs a repartition, a second aggregate stage and hand-offs
    /// between threads for a week of rows). Not one partition on a cluster (there a query is a
    /// job whose tasks are the executors' work).
    pub(crate) fn serving_for(&self, pushdown: bool, small: bool) -> Option<&SessionContext> {
        let small = small && self.inner.config.engine.cluster.is_none();
        match (pushdown, small) {
            (false, false) => None,
            (true, false) => Some(&self.inner.pushdown),
            (false, true) => Some(&self.inner.narrow),
            (true, true) => Some(&self.inner.narrow_pushdown),
        }
    }

    /// The files of each named table, as of the last refresh (unknown names are left out).
    pub async fn files_of<'n>(
        &self,
        tables: impl Iterator<Item = &'n String>,
    ) -> BTreeMap<String, Vec<ObjectMeta>> {
        let state = self.inner.catalog.lock().await;
        tables
            .filter_map(|name| {
                state
                    .tables
                    .get(name)
                    .map(|loaded| (name.clone(), loaded.discovered.files.clone()))
            })
            .collect()
    }

    /// Plans one read-only query (checked like analyst SQL).
    pub(crate) async fn plan_sql(
        &self,
        sql: &str,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        plan_sql_in(&self.inner.ctx, sql).await
    }

    /// Runs a planned query to the end on the query runtime.
    pub(crate) async fn collect_plan(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<Vec<RecordBatch>> {
        self.collect_plan_in(self.inner.ctx.clone(), plan).await
    }

    /// [`Engine::collect_plan`] in another session of this engine (the build session).
    async fn collect_plan_in(
        &self,
        ctx: SessionContext,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<Vec<RecordBatch>> {
        let work = async move {
            let frame = ctx.execute_logical_plan(plan).await?;
            Ok::<_, Error>(frame.collect().await?)
        };
        self.run_query("query", work).await
    }

    /// Runs `work` (one query of a build) on the query runtime, stopped when the caller stops
    /// waiting. On a cluster: only when it can run one, within `engine.cluster_job_timeout_ms`
    /// (a Ballista job can stall after losing an executor), its errors naming the cluster.
    pub(crate) async fn run_query<T: Send + 'static>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.cluster_ready().await?;
        let handle = self.cpu_handle()?.spawn(work);
        let _stop_when_dropped = StopOnDrop(handle.abort_handle());
        let engine = &self.inner.config.engine;
        let joined = match &engine.cluster {
            Some(url) => {
                let limit = Duration::from_millis(engine.cluster_job_timeout_ms);
                match tokio::time::timeout(limit, handle).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        return Err(Error::unavailable(
                            "cluster_timeout",
                            format!(
                                "on the cluster {url}: a {what} did not finish within {} s \
                                 (engine.cluster_job_timeout_ms); a Ballista job can stall after \
                                 losing an executor: see the scheduler's /api/jobs",
                                limit.as_secs()
                            ),
                        ))
                    }
                }
            }
            None => handle.await,
        };
        let result =
            joined.map_err(|error| Error::internal(format!("{what} task failed: {error}")))?;
        self.named(result)
    }

    /// With `engine.cluster`: fails unless the cluster can run a query now (see
    /// `cluster::ready`).
    pub(crate) async fn cluster_ready(&self) -> Result<()> {
        #[cfg(feature = "cluster")]
        if let Some(url) = &self.inner.config.engine.cluster {
            return crate::cluster::ready(url, crate::cluster::GRACE).await;
        }
        Ok(())
    }

    /// `result`, its error naming the cluster the query ran on, if it ran on one.
    pub(crate) fn named<T>(&self, result: Result<T>) -> Result<T> {
        #[cfg(feature = "cluster")]
        if let Some(url) = &self.inner.config.engine.cluster {
            return result.map_err(|error| crate::cluster::named(url, error));
        }
        result
    }

    /// The answer of a small read-only query over the current data, from the rollup store when
    /// it has it (computed again whenever a file of a table it reads changes), else computed.
    pub async fn cached_query(&self, sql: &str) -> Result<Arc<Vec<RecordBatch>>> {
        self.refresh().await?;
        self.cached_query_as_listed(sql).await
    }

    /// [`Engine::cached_query`] over the data as last listed (no listing).
    pub async fn cached_query_as_listed(&self, sql: &str) -> Result<Arc<Vec<RecordBatch>>> {
        match self.rollups() {
            Some(rollups) => rollups.query(self, sql).await,
            None => {
                let plan = self.plan_sql(sql).await?;
                Ok(Arc::new(self.collect_plan(plan).await?))
            }
        }
    }

    /// The latest local day (reporting time zone) of the data behind `column` of `table` over
    /// the data as last listed; `None` when there is no row. When `table` is a view whose
    /// `column` copies a landed table's column, that landed column is read, whatever rows the
    /// view filters: a source's freshness is what has landed. With the rollup store the answer
    /// comes from the files' footers (no data read); else from one query.
    pub async fn latest_day_as_listed(
        &self,
        table: &str,
        column: &str,
    ) -> Result<Option<chrono::NaiveDate>> {
        let plan = self
            .plan_sql(&format!("SELECT {column} FROM {table}"))
            .await?;
        let origin = crate::rollup::lineage::trace(self.session(), &plan, Some(column))
            .await
            .ok()
            .and_then(|lineage| lineage.time);
        let (table, column) = match &origin {
            Some((landed, landed_column)) => (landed.as_str(), landed_column.as_str()),
            None => (table, column),
        };
        let tz = self.config().time_zone;
        if let (Some(rollups), true) = (self.rollups(), origin.is_some()) {
            let is_date = self
                .inner
                .catalog
                .lock()
                .await
                .tables
                .get(table)
                .is_some_and(|t| {
                    t.schema.field_with_name(column).is_ok_and(|f| {
                        matches!(
                            f.data_type(),
                            arrow::datatypes::DataType::Date32 | arrow::datatypes::DataType::Date64
                        )
                    })
                });
            if let Some(latest) = rollups.latest_landed(self, table, column).await {
                return Ok(latest.and_then(|micros| {
                    let instant = chrono::DateTime::from_timestamp_micros(micros)?;
                    Some(if is_date {
                        instant.date_naive()
                    } else {
                        instant.with_timezone(&tz).date_naive()
                    })
                }));
            }
        }
        let sql = format!("SELECT CAST(max({column}) AS VARCHAR) AS latest FROM {table}");
        let batches = self.cached_query_as_listed(&sql).await?;
        let text = batches.first().and_then(|batch| {
            use arrow::array::{Array, AsArray};
            let column =
                arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).ok()?;
            let strings = column.as_string::<i32>();
            (batch.num_rows() > 0 && !strings.is_null(0)).then(|| strings.value(0).to_string())
        });
        Ok(text.and_then(|text| local_day(&text, tz)))
    }

    /// Returns the object store holding the data root (used by tests and `kpi demo`).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner.store)
    }

    /// Brings the catalog in step with the data root: lists it, unless a background task does
    /// ([`Engine::refresh_in_background`]; then the catalog is at most one interval old and
    /// this costs nothing). Returns whether the set of tables or any table's schema changed.
    pub async fn refresh(&self) -> Result<bool> {
        if self
            .inner
            .background
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(false);
        }
        self.list_now().await
    }

    /// From now on, [`Engine::refresh`] leaves listing to a background task that calls
    /// [`Engine::list_now`] on its own schedule (`kpi serve`).
    pub fn refresh_in_background(&self) {
        self.inner
            .background
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many listings there were, and when the last one finished.
    pub fn listed(&self) -> Listed {
        *self.inner.listed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the query pool holds now (bytes reserved by running queries and kept views) and
    /// what spilled queries hold on disk now (bytes in DataFusion's temporary files).
    pub fn pool_use(&self) -> PoolUse {
        let runtime = self.inner.ctx.runtime_env();
        PoolUse {
            reserved_bytes: runtime.memory_pool.reserved(),
            spilled_bytes: runtime.disk_manager.used_disk_space(),
        }
    }

    /// The temporary folders DataFusion made for queries that spilled (none until one does).
    pub fn spill_folders(&self) -> Vec<std::path::PathBuf> {
        self.inner.ctx.runtime_env().disk_manager.temp_dir_paths()
    }

    /// Lists the data root and brings the catalog in step with it. Returns whether the set of
    /// tables or any table's schema changed. Queries keep running meanwhile: the catalog is
    /// locked only to apply what the listing found.
    pub async fn list_now(&self) -> Result<bool> {
        let inner = &self.inner;
        let _one_at_a_time = inner.listing.lock().await;
        let started = std::time::Instant::now();
        let listed = list_all(&inner.store, &inner.root, &inner.config.data_root).await?;
        crate::telemetry::count(
            "kpi_data_listings_total",
            "Listings of the data root (one LIST of the root, or a walk of the local folder).",
            &[],
        );
        let root_missing = listed.is_none();
        let objects = listed.unwrap_or_default();
        let (tables, strays) = group_tables(inner.root.as_ref(), &objects);
        let unseen: Vec<ObjectMeta> = {
            let state = inner.catalog.lock().await;
            tables
                .iter()
                .flat_map(|table| table.files.iter())
                .filter(|meta| !state.file_schemas.contains_key(&FileKey::of(meta)))
                .cloned()
                .collect()
        };
        let (files, new) = (objects.len(), unseen.len());
        let footers = self.read_footers(unseen).await;
        tracing::debug!(
            "listed {files} files, read {new} new footers in {} ms",
            started.elapsed().as_millis()
        );

        let mut state = inner.catalog.lock().await;
        state.root_missing = root_missing;
        state.strays = strays;
        state.file_schemas.extend(footers);
        let versions: BTreeMap<String, String> = tables
            .iter()
            .map(|table| (table.qualified_name(), files_version(&table.files)))
            .collect();
        let before = Arc::clone(&inner.versions.read().unwrap_or_else(|p| p.into_inner()));
        self.cache_file_lists(&tables, &before, &versions)?;
        if versions != *before {
            self.inner.attribution.invalidate();
            self.bump_generation();
            *inner.versions.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(versions);
        }

        let mut changed = false;
        let mut seen = Vec::new();
        for table in tables {
            seen.push(table.qualified_name());
            changed |= self.sync_table(&mut state, table)?;
        }
        let gone: Vec<String> = state
            .tables
            .keys()
            .filter(|name| !seen.contains(name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(loaded) = state.tables.remove(&name) {
                self.bump_tables_epoch();
                self.schema_provider(&loaded.discovered.source)?
                    .deregister_table(&loaded.discovered.name)?;
                self.forget_file_list(&loaded.discovered)?;
                changed = true;
            }
        }
        if changed && !state.views.is_empty() {
            let views = state.views.clone();
            self.register_views(&mut state, views, None).await;
        }
        tracing::debug!(
            "catalog in step with the listing in {} ms",
            started.elapsed().as_millis()
        );
        let mut listed = inner.listed.lock().unwrap_or_else(|p| p.into_inner());
        listed.count += 1;
        listed.at_unix_ms = chrono::Utc::now().timestamp_millis();
        Ok(changed)
    }

    /// Hands every table's files, as listed, to DataFusion's list-files cache (the tables whose
    /// version changed, or that are not in it), so that scans read exactly those files.
    fn cache_file_lists(
        &self,
        tables: &[DiscoveredTable],
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
    ) -> Result<()> {
        let Some(cache) = self
            .inner
            .ctx
            .runtime_env()
            .cache_manager
            .get_list_files_cache()
        else {
            return Ok(());
        };
        for table in tables {
            let name = table.qualified_name();
            let key = list_cache_key(&self.table_url(table)?);
            if before.get(&name) != after.get(&name) || !cache.contains_key(&key) {
                cache.put(&key, CachedFileList::new(table.files.clone()));
            }
        }
        Ok(())
    }

    /// The runtime's cache of each file's statistics (kept per file version: a replaced file's
    /// entry no longer matches), so the scans of a report compute them once per file, not once
    /// per scan.
    fn file_statistics(
        &self,
    ) -> Option<Arc<datafusion::execution::cache::cache_manager::FileStatisticsCache>> {
        self.inner
            .ctx
            .runtime_env()
            .cache_manager
            .get_file_statistic_cache()
    }

    /// Drops a vanished table's files from DataFusion's list-files cache.
    fn forget_file_list(&self, table: &DiscoveredTable) -> Result<()> {
        if let Some(cache) = self
            .inner
            .ctx
            .runtime_env()
            .cache_manager
            .get_list_files_cache()
        {
            cache.remove(&list_cache_key(&self.table_url(table)?));
        }
        Ok(())
    }

    /// Reads the Parquet footers of `files` (a few at a time).
    async fn read_footers(
        &self,
        files: Vec<ObjectMeta>,
    ) -> Vec<(FileKey, std::result::Result<SchemaRef, String>)> {
        let inner = &self.inner;
        let session = inner.ctx.state();
        futures::stream::iter(files)
            .map(|meta| {
                let store = Arc::clone(&inner.store);
                let session = &session;
                async move {
                    (
                        FileKey::of(&meta),
                        read_file_schema(session, store, &meta).await,
                    )
                }
            })
            .buffer_unordered(FOOTERS_AT_ONCE)
            .collect()
            .await
    }

    /// Registers a discovered table again when its schema, partitions or problem changed
    /// (an unreadable table becomes an [`UnavailableTable`] that says why); returns whether it
    /// did.
    fn sync_table(&self, state: &mut CatalogState, table: DiscoveredTable) -> Result<bool> {
        let name = table.qualified_name();
        let (schema, error) =
            consensus_schema(&table, &state.file_schemas, self.inner.root.as_ref());
        let structure = format!(
            "{:?}|{:?}|{:?}",
            schema.fields(),
            table.partition_cols,
            error
        );
        if let Some(loaded) = state.tables.get_mut(&name) {
            if loaded.structure == structure {
                loaded.discovered = table;
                return Ok(false);
            }
        }
        let provider: Arc<dyn TableProvider> = match &error {
            Some(message) => Arc::new(UnavailableTable::new(Arc::clone(&schema), message.clone())),
            None => self.listing_table(&table, Arc::clone(&schema))?,
        };
        // A memory schema refuses to overwrite a table: replace it explicitly.
        let schema_provider = self.schema_provider(&table.source)?;
        self.bump_tables_epoch();
        schema_provider.deregister_table(&table.name)?;
        schema_provider.register_table(table.name.clone(), provider)?;
        state.tables.insert(
            name,
            LoadedTable {
                discovered: table,
                schema,
                error,
                structure,
            },
        );
        Ok(true)
    }

    /// Describes every discovered table (call [`Engine::refresh`] first for current data).
    pub async fn tables(&self) -> Vec<TableInfo> {
        let state = self.inner.catalog.lock().await;
        state
            .tables
            .iter()
            .map(|(name, loaded)| TableInfo {
                name: name.clone(),
                files: loaded.discovered.files.len(),
                bytes: loaded.discovered.total_bytes(),
                partition_columns: loaded.discovered.partition_cols.clone(),
                columns: loaded
                    .schema
                    .fields()
                    .iter()
                    .map(|field| (field.name().clone(), field.data_type().to_string()))
                    .collect(),
                data_version: loaded.discovered.data_version(),
                error: loaded.error.clone(),
            })
            .collect()
    }

    /// Returns problems with the data root's layout: stray files and a missing root.
    pub async fn layout_problems(&self) -> Vec<String> {
        let state = self.inner.catalog.lock().await;
        let mut problems: Vec<String> = state
            .strays
            .iter()
            .map(|stray| format!("{}: {}", stray.path, stray.reason))
            .collect();
        if state.root_missing {
            problems.insert(
                0,
                format!(
                    "data root {} does not exist; generate demo data with `kpi demo` or point --data at your landed Parquet",
                    self.inner.config.data_root.url()
                ),
            );
        }
        problems
    }

    /// Returns a scratch session that sees the landed tables and an empty `reporting` schema,
    /// for validating definitions without touching what the engine serves.
    pub fn sandbox(&self) -> Result<Sandbox> {
        // Read first: a table registered again while this sandbox plans makes it stale.
        let epoch = self.tables_epoch();
        let main_state = self.inner.ctx.state();
        let state = SessionStateBuilder::new()
            .with_config(main_state.config().clone())
            .with_runtime_env(Arc::clone(main_state.runtime_env()))
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(on_cluster(&self.inner.config, state)?);
        let catalog = self.catalog()?;
        let target = ctx
            .catalog(CATALOG)
            .ok_or_else(|| Error::internal("default catalog missing in sandbox"))?;
        for name in catalog.schema_names() {
            if name == REPORTING_SCHEMA || name == "information_schema" {
                continue;
            }
            if let Some(schema) = catalog.schema(&name) {
                target.register_schema(&name, schema)?;
            }
        }
        let reporting = Arc::new(MemorySchemaProvider::new());
        target.register_schema(
            REPORTING_SCHEMA,
            Arc::clone(&reporting) as Arc<dyn SchemaProvider>,
        )?;
        Ok(Sandbox::new(ctx, reporting, epoch))
    }

    /// Replaces the served `reporting` views with `views` (in dependency order). A view that no
    /// longer plans is served as unavailable with the planning error, never dropped silently.
    pub async fn install_views(&self, views: Vec<ViewDef>) {
        self.install_planned_views(views, None).await;
    }

    /// [`Engine::install_views`], taking each view's plan from `planned` (the sandbox the
    /// definitions were checked in) when it holds the view with the same SQL and no landed
    /// table was registered again since it was made: a view is then planned once per start.
    pub async fn install_planned_views(&self, views: Vec<ViewDef>, planned: Option<&Sandbox>) {
        let mut state = self.inner.catalog.lock().await;
        let planned = planned.filter(|sandbox| sandbox.epoch == self.tables_epoch());
        self.register_views(&mut state, views, planned).await;
    }

    async fn register_views(
        &self,
        state: &mut CatalogState,
        mut views: Vec<ViewDef>,
        planned: Option<&Sandbox>,
    ) {
        // Every readable table's distinct rows, so data health counts exact duplicates per
        // period through the rollup store (a landed day recounts its period, not the table).
        views.extend(
            state
                .tables
                .iter()
                .filter(|(_, table)| table.error.is_none())
                .map(|(name, _)| ViewDef {
                    name: distinct_view(name),
                    sql: format!("SELECT DISTINCT * FROM {name}"),
                }),
        );
        self.inner.attribution.invalidate();
        self.bump_generation();
        let provider = Arc::new(MemorySchemaProvider::new());
        match self.sandbox() {
            Ok(sandbox) => {
                let _ = self.add_attribution_table(&sandbox, &views);
                for view in &views {
                    if let Some((table, schema)) = match planned {
                        Some(planned) => planned.view(&view.name, &view.sql).await,
                        None => None,
                    } {
                        if sandbox.add_table(&view.name, table).is_ok() {
                            state.view_schemas.insert(view.name.clone(), schema);
                            continue;
                        }
                    }
                    match sandbox.add_view(&view.name, &view.sql).await {
                        Ok(schema) => {
                            state.view_schemas.insert(view.name.clone(), schema);
                        }
                        Err(error) => {
                            let schema = state
                                .view_schemas
                                .get(&view.name)
                                .cloned()
                                .unwrap_or_else(|| Arc::new(Schema::empty()));
                            let message = format!(
                                "view reporting.{} (queries/{}.sql) no longer plans against the landed data: {}",
                                view.name, view.name, error.message
                            );
                            tracing::warn!("{message}");
                            let broken = Arc::new(UnavailableTable::new(schema, message));
                            let _ = sandbox.reporting.register_table(view.name.clone(), broken);
                        }
                    }
                }
                for name in sandbox.reporting.table_names() {
                    if let Ok(Some(table)) = sandbox.reporting.table(&name).await {
                        let _ = provider.register_table(name, table);
                    }
                }
            }
            Err(error) => tracing::error!("cannot build a session to plan views: {error}"),
        }
        if let Ok(catalog) = self.catalog() {
            let _ = catalog.register_schema(REPORTING_SCHEMA, provider);
        }
        state.views = views;
    }

    /// Adds `reporting.attribution` to a session whose views are `views`, when its inputs
    /// are among them (or are landed tables).
    fn add_attribution_table(&self, sandbox: &Sandbox, views: &[ViewDef]) -> Result<()> {
        let inputs = &self.inner.config.attribution;
        let defined = |name: &str| match name.split_once('.') {
            Some((REPORTING_SCHEMA, view)) => views.iter().any(|v| v.name == view),
            _ => true,
        };
        if defined(&inputs.touches) && defined(&inputs.conversions) {
            let table = self.attribution_table(inputs.default);
            sandbox.add_table(crate::attribution::table::TABLE_NAME, Arc::new(table))?;
        }
        Ok(())
    }

    fn tables_epoch(&self) -> u64 {
        self.inner
            .tables_epoch
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn bump_tables_epoch(&self) {
        self.inner
            .tables_epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn bump_generation(&self) {
        self.inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The build session of the current data and views (see `materialize`): views that do
    /// real work are computed once and kept; made again when data or views change.
    pub(crate) async fn build_session(&self) -> Result<SessionContext> {
        let generation = self
            .inner
            .generation
            .load(std::sync::atomic::Ordering::SeqCst);
        let mut slot = self.inner.build.lock().await;
        if let Some((at, ctx)) = slot.as_ref() {
            if *at == generation {
                return Ok(ctx.clone());
            }
        }
        *slot = None;
        let sandbox = self.sandbox()?;
        let (views, landed_bytes) = {
            let state = self.inner.catalog.lock().await;
            let bytes: HashMap<String, u64> = state
                .tables
                .iter()
                .map(|(name, loaded)| {
                    let size = loaded.discovered.files.iter().map(|f| f.size).sum();
                    (name.clone(), size)
                })
                .collect();
            (state.views.clone(), bytes)
        };
        self.add_attribution_table(&sandbox, &views)?;
        let serving = self.catalog()?.schema(REPORTING_SCHEMA);
        for view in &views {
            let provider: Arc<dyn TableProvider> = match sandbox.plan(&view.sql).await {
                // A table's distinct view is read once per data version (its duplicate
                // count): keeping it would only hold the whole table in memory. A view over
                // more landed bytes than could fit is not tried either.
                // On a cluster every view runs there: nothing is kept in this process.
                Ok(plan)
                    if self.inner.config.engine.cluster.is_none()
                        && materialize::worth_keeping(&plan)
                        && !view.name.starts_with("_distinct__")
                        && materialize::could_fit(&plan, &landed_bytes) =>
                {
                    Arc::new(materialize::KeptView::new(&view.name, plan))
                }
                Ok(plan) => Arc::new(datafusion::datasource::ViewTable::new(
                    plan,
                    Some(view.sql.clone()),
                )),
                // A view that does not plan is served as unavailable: use that table.
                Err(error) => match &serving {
                    Some(schema) => match schema.table(&view.name).await {
                        Ok(Some(table)) => table,
                        _ => return Err(error),
                    },
                    None => return Err(error),
                },
            };
            sandbox.add_table(&view.name, provider)?;
        }
        *slot = Some((generation, sandbox.ctx.clone()));
        Ok(sandbox.ctx)
    }

    /// Drops the build session and the views and windows it kept (after a build: memory goes
    /// back).
    pub async fn release_build_session(&self) {
        *self.inner.build.lock().await = None;
        if let Ok(mut windows) = self.inner.windows.lock() {
            windows.1 = crate::cache::Cache::new(KEPT_WINDOWS);
        }
    }

    /// `frame`, the relation of `query` (in the serving or pushdown session), restricted to
    /// the rows whose time column falls in `window`, computed on first scan and kept for the
    /// data version (or until [`Engine::release_build_session`]; at most [`KEPT_WINDOWS`], the
    /// least recently used dropped first, so metric API requests over many periods cannot pile
    /// them up), as the build session keeps
    /// whole views (see `materialize`: the same size limit and memory reservation). The narrow
    /// misses of a landing (every piece of the week a day landed in) then read a relation's
    /// rows of that week once, not once per piece, and a de-duplicating view runs once.
    /// Exact for any bucket inside `window`: the aggregate filters each bucket again.
    pub(crate) fn windowed(
        &self,
        frame: DataFrame,
        query: &aggregate::AggregateQuery,
        window: aggregate::Bucket,
    ) -> Result<DataFrame> {
        let time_type = frame
            .schema()
            .field_with_unqualified_name(&query.time_column)?
            .data_type()
            .clone();
        let inside = aggregate::within(&time_type, &query.time_column, &window)?;
        let key = format!(
            "{} {} {} {}..{}",
            query.table,
            query.time_column,
            window_label(&window),
            window.start.timestamp_micros(),
            window.end.timestamp_micros()
        );
        let generation = self
            .inner
            .generation
            .load(std::sync::atomic::Ordering::SeqCst);
        let (state, plan) = frame.into_parts();
        let view = {
            let mut windows = self
                .inner
                .windows
                .lock()
                .map_err(|_| Error::internal("the window cache is poisoned"))?;
            if windows.0 != generation {
                *windows = (generation, crate::cache::Cache::new(KEPT_WINDOWS));
            }
            match windows.1.get(&key) {
                Some(view) => view,
                None => {
                    let filtered = LogicalPlanBuilder::from(plan).filter(inside)?.build()?;
                    let name = format!("window {} {}", query.table, window_label(&window));
                    // Computed in the session the frame came from (filters and projections
                    // reach the Parquet scan), whichever session aggregates it.
                    let view = Arc::new(materialize::KeptView::computed_in(
                        &name,
                        filtered,
                        state.clone(),
                    ));
                    windows.1.insert(key, Arc::clone(&view));
                    view
                }
            }
        };
        let scan = LogicalPlanBuilder::scan(
            TableReference::parse_str(&query.table),
            provider_as_source(view),
            None,
        )?
        .build()?;
        Ok(DataFrame::new(state, scan))
    }

    /// Plans and runs a read-only query in the build session.
    pub(crate) async fn collect_sql_in_build_session(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let ctx = self.build_session().await?;
        let plan = plan_sql_in(&ctx, sql).await?;
        self.collect_plan_in(ctx, plan).await
    }

    /// Returns the attribution table of the configured inputs under `settings` (computed
    /// credits are shared with every other table of this engine).
    pub fn attribution_table(
        &self,
        settings: crate::attribution::Settings,
    ) -> crate::attribution::table::AttributionTable {
        let inputs = &self.inner.config.attribution;
        crate::attribution::table::AttributionTable::new(
            inputs,
            settings,
            Arc::clone(&self.inner.attribution),
        )
    }

    /// When a file last landed (its modification time) in each source, as of the last refresh.
    pub async fn latest_landed(&self) -> BTreeMap<String, chrono::DateTime<chrono::Utc>> {
        let state = self.inner.catalog.lock().await;
        let mut latest: BTreeMap<String, chrono::DateTime<chrono::Utc>> = BTreeMap::new();
        for loaded in state.tables.values() {
            let table = &loaded.discovered;
            if let Some(newest) = table.files.iter().map(|f| f.last_modified).max() {
                let entry = latest.entry(table.source.clone()).or_insert(newest);
                *entry = (*entry).max(newest);
            }
        }
        latest
    }

    /// The SQL of every installed `reporting` view, by qualified name (`reporting.sessions`).
    pub async fn view_sql(&self) -> BTreeMap<String, String> {
        let state = self.inner.catalog.lock().await;
        state
            .views
            .iter()
            .map(|view| {
                (
                    format!("{REPORTING_SCHEMA}.{}", view.name),
                    view.sql.clone(),
                )
            })
            .collect()
    }

    /// Returns each table's data version (a hash of its files), as of the last refresh.
    pub async fn data_versions(&self) -> BTreeMap<String, String> {
        let versions = self
            .inner
            .versions
            .read()
            .unwrap_or_else(|p| p.into_inner());
        versions.as_ref().clone()
    }

    /// Runs one read-only SQL query within `limits`, after bringing the catalog up to date.
    pub async fn run_sql(&self, sql: &str, limits: QueryLimits) -> Result<QueryOutput> {
        let statement = safety::check_read_only(sql)?;
        self.refresh().await?;
        self.cluster_ready().await?;
        let ctx = self.inner.ctx.clone();
        let started = Instant::now();
        let work = async move {
            let state = ctx.state();
            let plan = state.statement_to_plan(statement).await?;
            safety::verify_plan(&plan)?;
            let frame = ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let mut stream = frame.execute_stream().await?;
            let mut batches = Vec::new();
            let mut rows = 0usize;
            let mut truncated = false;
            while let Some(batch) = stream.try_next().await? {
                let room = limits.max_rows - rows;
                if batch.num_rows() > room {
                    batches.push(batch.slice(0, room));
                    rows += room;
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
            }
            Ok::<_, Error>(QueryOutput {
                schema,
                batches,
                rows,
                truncated,
                elapsed: Duration::ZERO,
            })
        };
        let handle = self.cpu_handle()?.spawn(work);
        // Stopped when this returns at the time limit, and when the caller stops waiting (a
        // request cut at its own limit, a client gone): no query runs with no one to answer.
        let _stop_when_dropped = StopOnDrop(handle.abort_handle());
        match tokio::time::timeout(limits.timeout, handle).await {
            Ok(Ok(result)) => self.named(result).map(|mut output| {
                output.elapsed = started.elapsed();
                output
            }),
            Ok(Err(join)) => Err(Error::internal(format!("query task failed: {join}"))),
            Err(_) => Err(Error::unavailable(
                "query_timeout",
                format!(
                    "query stopped after the time limit of {} ms; narrow it (filters, LIMIT) or raise server.sql_timeout_ms",
                    limits.timeout.as_millis()
                ),
            )),
        }
    }

    fn cpu_handle(&self) -> Result<tokio::runtime::Handle> {
        self.inner
            .cpu
            .0
            .as_ref()
            .map(|runtime| runtime.handle().clone())
            .ok_or_else(|| Error::internal("query runtime is shut down"))
    }

    fn catalog(&self) -> Result<Arc<dyn CatalogProvider>> {
        self.inner
            .ctx
            .catalog(CATALOG)
            .ok_or_else(|| Error::internal("default catalog missing"))
    }

    fn schema_provider(&self, source: &str) -> Result<Arc<dyn SchemaProvider>> {
        let catalog = self.catalog()?;
        if let Some(schema) = catalog.schema(source) {
            return Ok(schema);
        }
        let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
        catalog.register_schema(source, Arc::clone(&schema))?;
        Ok(schema)
    }

    /// The folder URL of a landed table.
    fn table_url(&self, table: &DiscoveredTable) -> Result<ListingTableUrl> {
        let folder = format!(
            "{}/{}/{}/",
            self.inner.url_base,
            table_prefix(&self.inner.root),
            table_path(table)
        );
        Ok(ListingTableUrl::parse(&folder)?)
    }

    fn listing_table(
        &self,
        table: &DiscoveredTable,
        schema: SchemaRef,
    ) -> Result<Arc<dyn TableProvider>> {
        let url = self.table_url(table)?;
        let partitions = table
            .partition_cols
            .iter()
            .map(|name| (name.clone(), DataType::Utf8))
            .collect();
        let options = ListingOptions::new(Arc::new(schema::parquet_format()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partitions);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Arc::new(
            ListingTable::try_new(config)?.with_cache(self.file_statistics()),
        ))
    }
}

/// `state` as the engine runs it: here, or with `engine.cluster` a client session of that
/// Ballista cluster (planned here, run there).
/// `ctx`'s catalog and settings, planning each query as one partition, with one pass of the
/// logical optimizer (a second pass, DataFusion's default, only confirms the first on these
/// small queries: the same reports for 3.4 % less CPU in a landing's report, paired runs).
fn one_partition(ctx: &SessionContext) -> SessionContext {
    let mut state = ctx.state();
    let options = state.config_mut().options_mut();
    options.execution.target_partitions = 1;
    options.optimizer.max_passes = 1;
    SessionContext::new_with_state(state)
}

fn on_cluster(config: &Config, state: SessionState) -> Result<SessionState> {
    match &config.engine.cluster {
        None => Ok(state),
        #[cfg(feature = "cluster")]
        Some(url) => crate::cluster::remote(url, state),
        #[cfg(not(feature = "cluster"))]
        Some(url) => Err(Error::input(
            "cluster_unsupported",
            format!(
                "engine.cluster is `{url}`, but this kpi was built without the `cluster` feature: \
                 build it with `cargo build --release --features cluster`, or unset engine.cluster \
                 (KPI_CLUSTER) to run every query in this process"
            ),
        )),
    }
}

/// Aborts a query task when dropped (its answer is no longer awaited).
struct StopOnDrop(tokio::task::AbortHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Room for every table's file list in DataFusion's list-files cache (about 200 bytes a
/// file: a million files).
const LIST_FILES_CACHE_BYTES: usize = 256 << 20;

/// The list-files cache key DataFusion's listing looks a table's folder up by.
fn list_cache_key(url: &ListingTableUrl) -> TableScopedPath {
    TableScopedPath {
        table: url.get_table_ref().clone(),
        path: url.prefix().clone(),
    }
}

/// Plans one read-only query in `ctx` (checked like analyst SQL).
async fn plan_sql_in(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    let statement = safety::check_read_only(sql)?;
    let plan = ctx.state().statement_to_plan(statement).await?;
    safety::verify_plan(&plan)?;
    Ok(plan)
}

/// A short hash of a table's files (path, size, modification time): changes when a file lands,
/// is replaced or disappears.
fn files_version(files: &[ObjectMeta]) -> String {
    use sha2::{Digest, Sha256};
    let mut keys: Vec<FileKey> = files.iter().map(FileKey::of).collect();
    keys.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = Sha256::new();
    for key in keys {
        hasher.update(key.path.as_bytes());
        hasher.update(key.size.to_le_bytes());
        hasher.update(key.modified_micros.to_le_bytes());
    }
    crate::digest::short_hex(&hasher.finalize(), 8)
}

fn table_prefix(root: &ObjectPath) -> String {
    root.as_ref().trim_matches('/').to_string()
}

fn table_path(table: &DiscoveredTable) -> String {
    format!("{}/{}", table.source, table.name)
}

/// The name (in the `reporting` schema) of the view of a landed table's distinct rows, which
/// the engine registers for every readable table.
pub fn distinct_view(table: &str) -> String {
    format!("_distinct__{}", table.replace('.', "__"))
}

/// The local day of a timestamp or date as text: RFC 3339 instants and naive timestamps (UTC)
/// are cut in `time_zone`; dates are taken as they are.
fn local_day(text: &str, time_zone: chrono_tz::Tz) -> Option<chrono::NaiveDate> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&time_zone).date_naive());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Some(naive.and_utc().with_timezone(&time_zone).date_naive());
        }
    }
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}
