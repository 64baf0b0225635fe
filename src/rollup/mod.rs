//! The rollup store: exact partial aggregates, persisted, recomputed only where a landed file
//! can change them.
//!
//! Every number kpi shows is, at the bottom, one *piece* (an aggregate of a measure over a
//! relation, with a filter and a grouping; or one whole health query) evaluated over one
//! *bucket* (a period's bounds). A piece's answer for a bucket is stored as a *partition*
//! together with a *fingerprint* of the input files that can affect it:
//!
//! - for the one landed table the piece's time column is proven to be copied from (see
//!   [`lineage`]), the files whose footer statistics place rows within 36 hours of the bucket
//!   (the margin covers time zones and date columns; a file without statistics counts for
//!   every bucket);
//! - for every other landed table the piece reads (through views and the attribution table),
//!   the files whose recorded *reach* through the relation overlaps the bucket (see
//!   `engine::reach` and `Rollups::reach_for`); a file without one counts for every bucket.
//!
//! A partition is served only when its fingerprint equals the fingerprint of the files listed
//! now, so a new, replaced or removed file makes exactly the buckets it can affect miss, and
//! they are computed again from the views (the same code as `rollups.enabled = false`). A
//! definition change changes the piece key (view SQL, measure, filter, attribution settings are
//! part of it), so only the pieces of changed metrics miss. Partitions are stored at the bucket
//! they are asked for and never added up, so COUNT DISTINCT stays exact. Derived, ratio and
//! cumulative metrics combine stored pieces in memory on every request (cumulative windows from
//! their day-range atoms, each a bucket of its own).

mod distinct;
pub mod lineage;
mod manifest;
mod ranges;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::engine::aggregate::{AggregateQuery, AggregateRow, Bucket};
use crate::engine::Engine;
use crate::engine::Reach;
use crate::error::{Error, Result};
pub use lineage::Lineage;
pub use manifest::{Delta, Entry, InputFile, Merged, PieceInfo};

/// Deltas beyond this many are merged into one when the store is opened.
const COMPACT_AFTER: usize = 32;
/// Margin around a bucket within which a file's rows count (time zones, date columns).
const MARGIN_MICROS: i64 = 36 * 3_600_000_000;

/// Misses spanning more days than this are computed in the build session (see
/// `engine::materialize`).
const WIDE_DAYS: i64 = 35;

/// Splits `buckets` (indexes, by start) into runs whose time-table files (those a bucket's
/// span overlaps) add up to at most `budget` bytes; a bucket over the budget alone is a run.
/// One run when the time column's table is not known (every file counts for every bucket).
fn runs_within(
    buckets: &[Bucket],
    lineage: &Lineage,
    files: &BTreeMap<String, Vec<ObjectMeta>>,
    spans: &HashMap<String, Option<(i64, i64)>>,
    budget: u64,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    let Some(time_files) = time_files(lineage, files) else {
        return vec![order];
    };
    order.sort_by_key(|i| buckets[*i].start);
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut run_files: HashSet<&str> = HashSet::new();
    let mut run_bytes = 0u64;
    for index in order {
        let touched = touching(&buckets[index], time_files, spans);
        let added: u64 = touched
            .iter()
            .filter(|meta| !run_files.contains(meta.location.as_ref()))
            .map(|meta| meta.size)
            .sum();
        if runs.is_empty() || (run_bytes + added > budget && run_bytes > 0) {
            runs.push(Vec::new());
            run_files.clear();
            run_bytes = 0;
        }
        run_bytes += touched
            .iter()
            .filter(|meta| run_files.insert(meta.location.as_ref()))
            .map(|meta| meta.size)
            .sum::<u64>();
        if let Some(run) = runs.last_mut() {
            run.push(index);
        }
    }
    runs
}

/// The files of the table the time column comes from (`None` when it is not known).
fn time_files<'f>(
    lineage: &Lineage,
    files: &'f BTreeMap<String, Vec<ObjectMeta>>,
) -> Option<&'f [ObjectMeta]> {
    let (table, _) = lineage.time.as_ref()?;
    Some(files.get(table).map(Vec::as_slice).unwrap_or(&[]))
}

/// The files of `time_files` whose rows can fall in `bucket` (see [`counts_for`]).
fn touching<'f>(
    bucket: &Bucket,
    time_files: &'f [ObjectMeta],
    spans: &HashMap<String, Option<(i64, i64)>>,
) -> Vec<&'f ObjectMeta> {
    let (start, end) = (
        bucket.start.timestamp_micros(),
        bucket.end.timestamp_micros(),
    );
    time_files
        .iter()
        .filter(|meta| counts_for(spans, meta, start, end))
        .collect()
}

/// Whether the time table's files that `buckets` touch add up to at most `budget` bytes
/// (`false` when the time table is not known).
fn within_bytes(
    buckets: &[Bucket],
    lineage: &Lineage,
    files: &BTreeMap<String, Vec<ObjectMeta>>,
    spans: &HashMap<String, Option<(i64, i64)>>,
    budget: u64,
) -> bool {
    let Some(time_files) = time_files(lineage, files) else {
        return false;
    };
    let mut touched: HashMap<&str, u64> = HashMap::new();
    for bucket in buckets {
        for meta in touching(bucket, time_files, spans) {
            touched.insert(meta.location.as_ref(), meta.size);
        }
    }
    touched.values().sum::<u64>() <= budget
}

/// Days from the first bucket's start to the last bucket's end.
fn span_days(buckets: &[Bucket]) -> i64 {
    Bucket::hull(buckets).map_or(0, |all| (all.end_day - all.start_day).num_days())
}

/// Counts of what the store did in this process (for tests, `/healthz` and the CLI).
#[derive(Debug, Default)]
pub struct Counters {
    /// Partitions answered from the store.
    pub reused: AtomicU64,
    /// Partitions computed from the views.
    pub computed: AtomicU64,
    /// Queries run against the views to compute partitions.
    pub queries: AtomicU64,
    /// Data files found corrupt or missing (their partitions were rebuilt).
    pub rebuilt_files: AtomicU64,
    /// Partitions computed by extending an earlier one with the files landed since (counted in
    /// `computed` too; see `distinct`).
    pub extended: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Activity {
    /// Partitions answered from the store.
    pub reused: u64,
    /// Partitions computed from the views.
    pub computed: u64,
    /// Queries run against the views to compute partitions.
    pub queries: u64,
    /// Data files found corrupt or missing and rebuilt.
    pub rebuilt_files: u64,
    /// Partitions computed by extending an earlier one with the files landed since (a table's
    /// distinct rows in a month a day landed in), counted in `computed` too.
    pub extended: u64,
}

/// One group of a bucket: dimension values and the measure.
type Group = (Vec<Option<String>>, Option<f64>);
/// A file's identity (path, size, modification time) and a column.
type RangeKey = (String, u64, i64, String);

/// The rows of one data file, by bucket.
enum Loaded {
    Aggregate(HashMap<String, Vec<Group>>),
    Batches(Arc<Vec<RecordBatch>>),
}

#[derive(Default)]
struct Index {
    /// Deltas read (object paths).
    deltas: HashSet<String>,
    /// Partitions by (piece, bucket, fingerprint).
    entries: HashMap<(String, String, String), Entry>,
    /// Everything read, kept for compaction, status and prune.
    merged: Merged,
    /// Data files read, by relative path.
    files: HashMap<String, Arc<Loaded>>,
    /// Reach recorded in this process and not yet written (the next delta carries it).
    unsaved_reach: BTreeMap<String, BTreeMap<String, Reach>>,
}

/// The store, shared by every request of a process.
pub struct Rollups {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    location: String,
    index: tokio::sync::Mutex<Index>,
    loaded: tokio::sync::OnceCell<()>,
    /// Each file's `(low, high, nulls, rows)` of a time column, from its footer.
    ranges: std::sync::Mutex<HashMap<RangeKey, Option<Span>>>,
    /// Reach probes, each run once per process (see [`Rollups::reach_for`]).
    probes: std::sync::Mutex<HashMap<(String, String), Probe>>,
    /// Landed bytes (Parquet, of the time column's table) one query computing wide misses may
    /// read (`rollups.run_kib`, 16 MiB by default: Arrow holds about 14 times the Parquet bytes
    /// of the demo's sessions once de-duplicated, so a run's hash table stays near 200 MiB);
    /// unbounded with `engine.cluster`.
    run_bytes: u64,
    /// One computation of a piece's missing partitions at a time: a request that finds a piece
    /// being computed waits, then reads what the other computed (single-flight per piece).
    turns: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    counters: Counters,
}

/// One file's reach through one relation, probed once (by relation key and file id).
type Probe = Arc<tokio::sync::OnceCell<Reach>>;

/// A file's `(low, high, nulls, rows)` of a time column (see [`ranges::time_span`]).
type Span = (i64, i64, u64, u64);

/// An aggregate's place in the store (see [`Rollups::prepare`]).
enum Preparation {
    Stored(Box<Prepared>),
    /// A relation kpi cannot see through (computed every time, never stored).
    Opaque(DataFrame),
}

struct Prepared {
    frame: DataFrame,
    lineage: Lineage,
    info: PieceInfo,
    piece: String,
    files: BTreeMap<String, Vec<ObjectMeta>>,
    /// Where each file's rows can fall in time, by path (see [`counts_for`]).
    spans: HashMap<String, Option<(i64, i64)>>,
    /// Each bucket's key, in the query's order.
    keyed: Vec<Keyed>,
}

/// A bucket's identity and the files that can affect it.
struct Keyed {
    bucket: String,
    fingerprint: String,
    inputs: Arc<Vec<InputFile>>,
}

impl Rollups {
    /// Opens the store of `config.rollups` (touches no storage until first used).
    pub fn open(config: &Config) -> Result<Self> {
        let (store, root, _) = crate::engine::open_store_at(&config.rollups.root, &config.s3)?;
        Ok(Self {
            store,
            root,
            location: config.rollups.root.url(),
            index: tokio::sync::Mutex::new(Index::default()),
            loaded: tokio::sync::OnceCell::new(),
            ranges: std::sync::Mutex::new(HashMap::new()),
            probes: std::sync::Mutex::new(HashMap::new()),
            // On a cluster a query's memory is not this machine's, and each query is a job
            // whose de-duplicating views are shuffled again: wide misses are one query.
            run_bytes: match config.engine.cluster {
                Some(_) => u64::MAX,
                None => config.rollups.run_bytes,
            },
            turns: std::sync::Mutex::default(),
            counters: Counters::default(),
        })
    }

    /// Where the store lives (for messages).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// What the store did in this process so far.
    pub fn activity(&self) -> Activity {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Activity {
            reused: read(&self.counters.reused),
            computed: read(&self.counters.computed),
            queries: read(&self.counters.queries),
            rebuilt_files: read(&self.counters.rebuilt_files),
            extended: read(&self.counters.extended),
        }
    }

    /// Answers an aggregate from stored partitions, computing (and storing) the buckets that
    /// have none for the current input files.
    pub async fn aggregate(
        &self,
        engine: &Engine,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>> {
        let prepared = self.prepare(engine, query).await?;
        self.answer(engine, query, prepared).await
    }

    /// [`Rollups::aggregate`] once its place in the store is known.
    async fn answer(
        &self,
        engine: &Engine,
        query: &AggregateQuery,
        prepared: Preparation,
    ) -> Result<Vec<AggregateRow>> {
        let Prepared {
            frame,
            lineage,
            info,
            piece,
            files,
            spans,
            keyed,
        } = match prepared {
            Preparation::Stored(prepared) => *prepared,
            // A relation kpi cannot see through is computed every time, never stored.
            Preparation::Opaque(frame) => return engine.aggregate_over(frame, query).await,
        };
        let (mut rows, mut missing) = self.stored_rows(&piece, &keyed).await;
        let mut _turn = None;
        if !missing.is_empty() {
            // Someone computing the same piece: wait, then compute only what is still missing.
            _turn = Some(self.turn(&piece).lock_owned().await);
            (rows, missing) = self.stored_rows(&piece, &keyed).await;
        }
        self.counters
            .reused
            .fetch_add((keyed.len() - missing.len()) as u64, Ordering::Relaxed);
        if missing.is_empty() {
            return Ok(rows);
        }
        let sub = AggregateQuery {
            buckets: missing.iter().map(|i| query.buckets[*i]).collect(),
            ..query.clone()
        };
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        // Wide misses (a first build, a trend) read whole views in the build session, where
        // each view runs once, unless they cover more landed bytes than one query should hold:
        // then they are computed a run of buckets at a time in the serving session (the time
        // filter prunes each run's files, so a de-duplicating view's hash table holds one run).
        // Narrow misses are one run there. A relation that joins another table is read with
        // Parquet filter pushdown, so the join's filter from the run's rows skips the rest of
        // the joined table (the form submits of a month at `--scale 10` read 160 MiB, not 850).
        let runs = runs_within(&sub.buckets, &lineage, &files, &spans, self.run_bytes);
        let computed = if runs.len() == 1 && span_days(&sub.buckets) > WIDE_DAYS {
            let ctx = engine.build_session().await?;
            let frame = engine.relation_in(&ctx, query).await?;
            engine.aggregate_over(frame, &sub).await?
        } else {
            // A narrow miss over little data is planned as one partition (see
            // `Engine::serving_for`); runs of a wide miss keep every core.
            let small = runs.len() == 1
                && within_bytes(&sub.buckets, &lineage, &files, &spans, self.run_bytes);
            let frame = match engine.serving_for(lineage.tables.len() > 1, small) {
                Some(ctx) => DataFrame::new(ctx.state(), frame.logical_plan().clone()),
                None => frame,
            };
            // One run (narrow misses: the week a day landed in) of a relation other pieces
            // read too: the relation's rows of those buckets are read once for every piece
            // that misses the same buckets (for a relation only one piece reads, keeping its
            // rows would only copy them). Not on a cluster: its jobs read landed tables, not
            // rows this process keeps (as for the build session's kept views).
            let shared = runs.len() == 1
                && lineage.attribution.is_empty()
                && engine.config().engine.cluster.is_none()
                && self.pieces_over(&query.table).await > 1;
            let (frame, windowed) = match Bucket::hull(&sub.buckets) {
                Some(window) if shared => (engine.windowed(frame, query, window)?, true),
                _ => (frame, false),
            };
            // Each run is a query of its own (one is counted above).
            self.counters
                .queries
                .fetch_add(runs.len() as u64 - 1, Ordering::Relaxed);
            let mut rows = Vec::new();
            // The last run takes the frame itself (a frame's copy is a copy of its session).
            let frames = std::iter::repeat_n(frame, runs.len());
            for (run, frame) in runs.iter().zip(frames) {
                let part = AggregateQuery {
                    buckets: run.iter().map(|i| sub.buckets[*i]).collect(),
                    ..sub.clone()
                };
                let found = if windowed {
                    engine.aggregate_over_window(frame, &part).await?
                } else {
                    engine.aggregate_over(frame, &part).await?
                };
                for mut row in found {
                    row.bucket = run[row.bucket];
                    rows.push(row);
                }
            }
            rows
        };
        tracing::debug!(
            "rollups: {} bucket(s) of {} on {} computed in {} ms",
            missing.len(),
            query.measure,
            query.table,
            started.elapsed().as_millis()
        );
        self.counters
            .computed
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        let mut by_bucket: Vec<Vec<Group>> = vec![Vec::new(); missing.len()];
        for row in computed {
            by_bucket[row.bucket].push((row.dimensions, row.value));
        }
        let parts: Vec<(&Keyed, &[Group])> = missing
            .iter()
            .zip(&by_bucket)
            .map(|(i, found)| (&keyed[*i], found.as_slice()))
            .collect();
        if let Err(error) = self.save_aggregate(&piece, &info, &parts).await {
            tracing::warn!(
                "rollup store {}: could not store {} partitions: {}",
                self.location,
                parts.len(),
                error.message
            );
        }
        for (slot, found) in missing.iter().zip(by_bucket) {
            rows.extend(found.into_iter().map(|(dimensions, value)| AggregateRow {
                bucket: *slot,
                dimensions,
                value,
            }));
        }
        Ok(rows)
    }

    /// Answers a whole read-only query (health checks) from the store, computed again when any
    /// file of a table it reads changes.
    pub async fn query(&self, engine: &Engine, sql: &str) -> Result<Arc<Vec<RecordBatch>>> {
        let plan = engine.plan_sql(sql).await?;
        let lineage = match lineage::trace(engine.session(), &plan, None).await {
            Ok(lineage) => with_view_sql(engine, lineage).await,
            // As for aggregates: computed every time, so its own error (if any) is the answer.
            Err(error) if error.code == lineage::OPAQUE => {
                return Ok(Arc::new(engine.collect_plan(plan).await?))
            }
            Err(error) => return Err(error),
        };
        let info = PieceInfo {
            kind: "query".into(),
            signature: String::new(),
            relation: sql.to_string(),
            detail: String::new(),
            views: lineage.views.clone(),
        };
        let piece = piece_key(&info, &lineage);
        let files = engine.files_of(lineage.tables.keys()).await;
        let (fingerprint, inputs) = fingerprint(&lineage, &files);
        let key = Keyed {
            bucket: "all".into(),
            fingerprint,
            inputs,
        };
        self.ensure_loaded().await?;
        let _turn = self.turn(&piece).lock_owned().await;
        if let Some(Loaded::Batches(batches)) = self.lookup(&piece, &key).await.as_deref() {
            self.counters.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(batches));
        }
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        // Health queries read whole tables and views: planned again in the build session (the
        // plan above has the views inlined, for the lineage), where each view runs once.
        let batches = engine.collect_sql_in_build_session(sql).await?;
        tracing::debug!(
            "rollups: query computed in {} ms: {sql}",
            started.elapsed().as_millis()
        );
        self.counters.computed.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.save_batches(&piece, &info, &key, &batches).await {
            tracing::warn!(
                "rollup store {}: could not store a query result: {}",
                self.location,
                error.message
            );
        }
        Ok(Arc::new(batches))
    }

    /// What an aggregate is in the store: its relation, lineage and piece key, the files listed
    /// for it and where their rows fall, and each bucket's key.
    async fn prepare(&self, engine: &Engine, query: &AggregateQuery) -> Result<Preparation> {
        let frame = engine.relation(query).await?;
        let lineage = match lineage::trace(
            engine.session(),
            frame.logical_plan(),
            Some(&query.time_column),
        )
        .await
        {
            Ok(lineage) => with_view_sql(engine, lineage).await,
            Err(error) if error.code == lineage::OPAQUE => return Ok(Preparation::Opaque(frame)),
            Err(error) => return Err(error),
        };
        let info = PieceInfo {
            kind: "aggregate".into(),
            signature: signature(
                &query.table,
                &query.measure,
                query.filter.as_deref(),
                &query.time_column,
            ),
            relation: query.table.clone(),
            detail: format!(
                "measure {} | filter {} | time {} | by {:?} | where {:?} | attribution {:?}",
                query.measure,
                query.filter.as_deref().unwrap_or("-"),
                query.time_column,
                query.dimensions,
                query.equals,
                lineage.attribution,
            ),
            views: lineage.views.clone(),
        };
        let piece = piece_key(&info, &lineage);
        let files = engine.files_of(lineage.tables.keys()).await;
        self.ensure_loaded().await?;
        let mut spans = self.ranges_for(engine, &lineage, &files).await;
        spans.extend(self.reach_for(engine, query, &lineage, &files).await);
        let mut candidates = Candidates::new(&lineage, &files, &spans);
        let keyed: Vec<Keyed> = query
            .buckets
            .iter()
            .map(|bucket| candidates.key(bucket))
            .collect();
        Ok(Preparation::Stored(Box::new(Prepared {
            frame,
            lineage,
            info,
            piece,
            files,
            spans,
            keyed,
        })))
    }

    /// The rows stored for each bucket of `keyed` (by index), and the indexes not stored.
    async fn stored_rows(&self, piece: &str, keyed: &[Keyed]) -> (Vec<AggregateRow>, Vec<usize>) {
        let mut rows = Vec::new();
        let mut missing = Vec::new();
        for (index, key) in keyed.iter().enumerate() {
            match self.aggregate_rows(piece, key).await {
                Some(found) => {
                    rows.extend(found.into_iter().map(|(dimensions, value)| AggregateRow {
                        bucket: index,
                        dimensions,
                        value,
                    }))
                }
                None => missing.push(index),
            }
        }
        (rows, missing)
    }

    /// How many aggregate pieces the store knows over `relation`.
    async fn pieces_over(&self, relation: &str) -> usize {
        let index = self.index.lock().await;
        index
            .merged
            .delta()
            .pieces
            .values()
            .filter(|info| info.kind == "aggregate" && info.relation == relation)
            .count()
    }

    /// The lock whose holder computes `piece`'s missing partitions.
    fn turn(&self, piece: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(turns.entry(piece.to_string()).or_default())
    }

    async fn aggregate_rows(&self, piece: &str, key: &Keyed) -> Option<Vec<Group>> {
        match self.lookup(piece, key).await.as_deref() {
            Some(Loaded::Aggregate(buckets)) => {
                Some(buckets.get(&key.bucket).cloned().unwrap_or_default())
            }
            _ => None,
        }
    }

    /// The data file holding a partition, read (and checked) once per process. A missing or
    /// corrupt file drops every partition it held, so they are computed again.
    async fn lookup(&self, piece: &str, key: &Keyed) -> Option<Arc<Loaded>> {
        let entry = {
            let index = self.index.lock().await;
            let entry = index.entries.get(&(
                piece.to_string(),
                key.bucket.clone(),
                key.fingerprint.clone(),
            ))?;
            if let Some(loaded) = index.files.get(&entry.file) {
                return Some(Arc::clone(loaded));
            }
            entry.clone()
        };
        match self.read_file(&entry).await {
            Ok(loaded) => {
                let loaded = Arc::new(loaded);
                let mut index = self.index.lock().await;
                index.files.insert(entry.file.clone(), Arc::clone(&loaded));
                Some(loaded)
            }
            Err(error) => {
                tracing::warn!(
                    "rollup store {}: {} is unusable ({}); its partitions are rebuilt",
                    self.location,
                    entry.file,
                    error.message
                );
                self.counters.rebuilt_files.fetch_add(1, Ordering::Relaxed);
                let mut index = self.index.lock().await;
                index.entries.retain(|_, e| e.file != entry.file);
                None
            }
        }
    }

    async fn read_file(&self, entry: &Entry) -> Result<Loaded> {
        let bytes = self
            .store
            .get(&self.path(&entry.file))
            .await?
            .bytes()
            .await?;
        let digest = crate::digest::hex(&Sha256::digest(&bytes));
        if digest != entry.sha256 {
            return Err(Error::internal(format!(
                "content hash {} does not match the manifest's {}",
                &digest[..12],
                &entry.sha256[..12.min(entry.sha256.len())]
            )));
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|builder| builder.build())
            .map_err(|error| Error::internal(format!("not readable Parquet: {error}")))?;
        let batches: Vec<RecordBatch> = reader
            .collect::<std::result::Result<_, _>>()
            .map_err(|error| Error::internal(format!("not readable Parquet: {error}")))?;
        if entry.bucket == "all" {
            return Ok(Loaded::Batches(Arc::new(batches)));
        }
        let mut buckets: HashMap<String, Vec<Group>> = HashMap::new();
        for batch in &batches {
            let columns = (
                batch.column_by_name("bucket"),
                batch.column_by_name("dimensions"),
                batch.column_by_name("value"),
            );
            let (Some(bucket), Some(dims), Some(value)) = columns else {
                return Err(Error::internal("columns bucket, dimensions, value missing"));
            };
            let (bucket, dims) = (bucket.as_string::<i32>(), dims.as_string::<i32>());
            let value = value.as_primitive::<Float64Type>();
            for row in 0..batch.num_rows() {
                let dimensions: Vec<Option<String>> = serde_json::from_str(dims.value(row))
                    .map_err(|error| Error::internal(format!("bad dimensions: {error}")))?;
                let value = (!value.is_null(row)).then(|| value.value(row));
                buckets
                    .entry(bucket.value(row).to_string())
                    .or_default()
                    .push((dimensions, value));
            }
        }
        Ok(Loaded::Aggregate(buckets))
    }

    async fn save_aggregate(
        &self,
        piece: &str,
        info: &PieceInfo,
        parts: &[(&Keyed, &[Group])],
    ) -> Result<()> {
        let mut buckets = Vec::new();
        let mut dims = Vec::new();
        let mut values = Vec::new();
        for (key, rows) in parts {
            for (dimensions, value) in *rows {
                buckets.push(key.bucket.clone());
                dims.push(serde_json::to_string(dimensions).unwrap_or_default());
                values.push(*value);
            }
        }
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("bucket", DataType::Utf8, false),
            Field::new("dimensions", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(buckets)),
                Arc::new(StringArray::from(dims)),
                Arc::new(Float64Array::from(values)),
            ],
        )?;
        let keys: Vec<(&Keyed, u64)> = parts
            .iter()
            .map(|(key, rows)| (*key, rows.len() as u64))
            .collect();
        self.save(piece, info, &keys, schema, &[batch]).await
    }

    async fn save_batches(
        &self,
        piece: &str,
        info: &PieceInfo,
        key: &Keyed,
        batches: &[RecordBatch],
    ) -> Result<()> {
        let schema = match batches.first() {
            Some(batch) => batch.schema(),
            None => Arc::new(Schema::empty()),
        };
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        self.save(piece, info, &[(key, rows)], schema, batches)
            .await
    }

    /// Writes one data file, then the manifest delta that names it (create-only, both).
    async fn save(
        &self,
        piece: &str,
        info: &PieceInfo,
        keys: &[(&Keyed, u64)],
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<()> {
        let mut buffer = Vec::new();
        {
            let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, schema, None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
        let sha256 = crate::digest::hex(&Sha256::digest(&buffer));
        let file = format!("{}/data/{piece}/{}.parquet", manifest::VERSION, unique());
        self.put_new(&file, buffer).await?;
        let mut delta = Delta {
            reach: std::mem::take(&mut self.index.lock().await.unsaved_reach),
            ..Delta::default()
        };
        delta.pieces.insert(piece.to_string(), info.clone());
        for (key, rows) in keys {
            delta
                .inputs
                .entry(key.fingerprint.clone())
                .or_insert_with(|| key.inputs.to_vec());
            delta.entries.push(Entry {
                piece: piece.to_string(),
                bucket: key.bucket.clone(),
                fingerprint: key.fingerprint.clone(),
                file: file.clone(),
                sha256: sha256.clone(),
                rows: *rows,
            });
        }
        let name = format!(
            "{}/manifest/{:016}-{}.json",
            manifest::VERSION,
            chrono::Utc::now().timestamp_micros(),
            unique()
        );
        let body = serde_json::to_vec(&delta).map_err(|e| Error::internal(e.to_string()))?;
        self.put_new(&name, body).await?;
        let mut index = self.index.lock().await;
        index.deltas.insert(self.path(&name).to_string());
        add_delta(&mut index, delta);
        Ok(())
    }

    async fn put_new(&self, relative: &str, body: Vec<u8>) -> Result<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&self.path(relative), PutPayload::from(body), options)
            .await?;
        Ok(())
    }

    fn path(&self, relative: &str) -> ObjectPath {
        let root = self.root.as_ref().trim_matches('/');
        if root.is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{root}/{relative}"))
        }
    }

    /// Reads the manifest ahead of the first question (a one-shot command does it while the
    /// data root is listed and the definitions load: all three wait on storage). An error is
    /// left for the first question to report.
    pub async fn preload(&self) {
        if let Err(error) = self.ensure_loaded().await {
            tracing::debug!("rollups: manifest not read ahead: {}", error.message);
        }
    }

    /// Reads every manifest delta once per process (merging them when there are many).
    async fn ensure_loaded(&self) -> Result<()> {
        self.loaded
            .get_or_try_init(|| async {
                let started = std::time::Instant::now();
                let read = self.read_new_deltas().await?;
                tracing::debug!(
                    "rollups: manifest of {read} deltas read in {} ms",
                    started.elapsed().as_millis()
                );
                if read > COMPACT_AFTER {
                    if let Err(error) = self.compact().await {
                        tracing::warn!(
                            "rollup store {}: could not merge the manifest: {}",
                            self.location,
                            error.message
                        );
                    }
                }
                Ok::<_, Error>(())
            })
            .await
            .map(|_| ())
    }

    /// Reads the deltas not read yet (written by this or another process); returns how many
    /// deltas the store holds.
    pub async fn read_new_deltas(&self) -> Result<usize> {
        let prefix = self.path(&format!("{}/manifest", manifest::VERSION));
        let listed: Vec<ObjectMeta> = match self.store.list(Some(&prefix)).try_collect().await {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let known = self.index.lock().await.deltas.clone();
        for meta in &listed {
            let path = meta.location.to_string();
            if known.contains(&path) || !path.ends_with(".json") {
                continue;
            }
            let delta = match self.store.get(&meta.location).await {
                Ok(object) => object.bytes().await.map_err(Error::from).and_then(|bytes| {
                    serde_json::from_slice::<Delta>(&bytes)
                        .map_err(|error| Error::internal(error.to_string()))
                }),
                Err(error) => Err(error.into()),
            };
            let mut index = self.index.lock().await;
            index.deltas.insert(path.clone());
            match delta {
                Ok(delta) => add_delta(&mut index, delta),
                Err(error) => tracing::warn!(
                    "rollup store {}: manifest {path} is unreadable and ignored: {}",
                    self.location,
                    error.message
                ),
            }
        }
        Ok(listed.len())
    }

    /// Writes every delta read as one, then deletes the ones it replaces.
    async fn compact(&self) -> Result<()> {
        let (merged, old) = {
            let index = self.index.lock().await;
            (index.merged.delta().clone(), index.deltas.clone())
        };
        let name = format!(
            "{}/manifest/{:016}-{}.json",
            manifest::VERSION,
            chrono::Utc::now().timestamp_micros(),
            unique()
        );
        let body = serde_json::to_vec(&merged).map_err(|e| Error::internal(e.to_string()))?;
        self.put_new(&name, body).await?;
        self.index
            .lock()
            .await
            .deltas
            .insert(self.path(&name).to_string());
        for path in old {
            let _ = self.store.delete(&ObjectPath::from(path.as_str())).await;
        }
        Ok(())
    }

    /// The time ranges of the files of the table the time column comes from.
    async fn ranges_for(
        &self,
        engine: &Engine,
        lineage: &Lineage,
        files: &BTreeMap<String, Vec<ObjectMeta>>,
    ) -> HashMap<String, Option<(i64, i64)>> {
        let Some((table, column)) = &lineage.time else {
            return HashMap::new();
        };
        self.spans(
            engine,
            files.get(table).map(Vec::as_slice).unwrap_or(&[]),
            column,
        )
        .await
        .into_iter()
        .map(|(path, span)| (path, span.map(|(low, high, _, _)| (low, high))))
        .collect()
    }

    /// The reach (see [`crate::engine::Reach`]) of every file of the tables `query`'s relation
    /// joins (every table but its time column's), recorded in the store per relation and file.
    /// The first time a relation is built, its joined tables' files are recorded as reaching
    /// every period (probing each would cost a build per file); a file that lands later is
    /// probed once, so it recomputes only the periods its rows reach.
    async fn reach_for(
        &self,
        engine: &Engine,
        query: &AggregateQuery,
        lineage: &Lineage,
        files: &BTreeMap<String, Vec<ObjectMeta>>,
    ) -> HashMap<String, Option<(i64, i64)>> {
        let mut out = HashMap::new();
        if !lineage.attribution.is_empty() {
            return out;
        }
        let time_table = lineage.time.as_ref().map(|(table, _)| table);
        for (table, metas) in files {
            if Some(table) == time_table || metas.is_empty() {
                continue;
            }
            let key = reach_key(query, lineage, table);
            let ids: Vec<String> = metas.iter().map(file_id).collect();
            // Each file's recorded reach; `None` when the relation has none recorded at all.
            let known: Option<Vec<Option<Reach>>> = {
                let index = self.index.lock().await;
                let recorded = index.merged.delta().reach.get(&key);
                recorded.map(|known| ids.iter().map(|id| known.get(id).copied()).collect())
            };
            let mut recorded = BTreeMap::new();
            for (at, (meta, id)) in metas.iter().zip(ids).enumerate() {
                let reach = match known.as_ref().map(|known| known[at]) {
                    Some(Some(reach)) => reach,
                    // The relation's first build: every file reaches every bucket.
                    None => *recorded.entry(id).or_insert(None),
                    Some(None) => {
                        let reach = self
                            .probe(engine, query, lineage, table, (&key, &id), meta)
                            .await;
                        *recorded.entry(id).or_insert(reach)
                    }
                };
                out.insert(meta.location.to_string(), reach);
            }
            if !recorded.is_empty() {
                let mut index = self.index.lock().await;
                let merged = index.merged.reach_mut().entry(key.clone()).or_default();
                for (id, reach) in &recorded {
                    merged.entry(id.clone()).or_insert(*reach);
                }
                let unsaved = index.unsaved_reach.entry(key).or_default();
                unsaved.extend(recorded);
            }
        }
        out
    }

    /// Probes one file's reach, once per process however many pieces ask.
    async fn probe(
        &self,
        engine: &Engine,
        query: &AggregateQuery,
        lineage: &Lineage,
        table: &str,
        (key, id): (&str, &str),
        meta: &ObjectMeta,
    ) -> Reach {
        let views = &lineage.views;
        let cell = match self.probes.lock() {
            Ok(mut probes) => {
                Arc::clone(probes.entry((key.to_string(), id.to_string())).or_default())
            }
            Err(_) => return None,
        };
        *cell
            .get_or_init(|| async {
                let started = std::time::Instant::now();
                let reach = engine
                    .reach(&query.table, &query.time_column, views, table, meta)
                    .await;
                tracing::debug!(
                    "rollups: reach of {} through {} in {} ms: {reach:?}",
                    meta.location,
                    query.table,
                    started.elapsed().as_millis()
                );
                reach.unwrap_or(None)
            })
            .await
    }

    /// Each file's `(low, high, nulls, rows)` of `column`, from its footer (cached per file
    /// version).
    async fn spans(
        &self,
        engine: &Engine,
        files: &[ObjectMeta],
        column: &str,
    ) -> HashMap<String, Option<Span>> {
        let mut out = HashMap::new();
        for meta in files {
            let key = (
                meta.location.to_string(),
                meta.size,
                meta.last_modified.timestamp_micros(),
                column.to_string(),
            );
            let known = self.ranges.lock().ok().and_then(|r| r.get(&key).copied());
            let span = match known {
                Some(span) => span,
                None => {
                    let cached = engine.cached_footer(meta);
                    let span = ranges::time_span(engine.store(), cached, meta, column).await;
                    if let Ok(mut cache) = self.ranges.lock() {
                        cache.insert(key, span);
                    }
                    span
                }
            };
            out.insert(meta.location.to_string(), span);
        }
        out
    }

    /// The largest value of a landed table's `column` as UTC microseconds (dates at UTC
    /// midnight), from its files' footers (cached per file version): no data is read. `None`
    /// when a file's footer cannot say; `Some(None)` when the table has no file.
    pub async fn latest_landed(
        &self,
        engine: &Engine,
        table: &str,
        column: &str,
    ) -> Option<Option<i64>> {
        let files = engine.files_of(std::iter::once(&table.to_string())).await;
        let files = files.get(table).map(Vec::as_slice).unwrap_or(&[]);
        let mut latest = None;
        for span in self.spans(engine, files, column).await.values() {
            let (low, high, _, _) = (*span)?;
            if low <= high {
                latest = latest.max(Some(high));
            }
        }
        Some(latest)
    }

    /// For each of `tables`, the bytes of its files that no stored count of its distinct rows
    /// (see [`Rollups::duplicates`]) was computed from (a landed day's files), or `None` when
    /// none is stored (its first count reads the whole table). How much counting its
    /// duplicates can have to read.
    pub async fn unseen_bytes(
        &self,
        engine: &Engine,
        tables: &[String],
    ) -> Result<Vec<Option<u64>>> {
        self.ensure_loaded().await?;
        let files = engine.files_of(tables.iter()).await;
        let index = self.index.lock().await;
        let stored = index.merged.delta();
        Ok(tables
            .iter()
            .map(|table| {
                let relation = format!(
                    "{}.{}",
                    crate::engine::REPORTING_SCHEMA,
                    crate::engine::distinct_view(table)
                );
                let pieces: HashSet<&str> = stored
                    .pieces
                    .iter()
                    .filter(|(_, info)| info.relation == relation)
                    .map(|(piece, _)| piece.as_str())
                    .collect();
                let counted: HashSet<&str> = stored
                    .entries
                    .iter()
                    .filter(|entry| pieces.contains(entry.piece.as_str()))
                    .map(|entry| entry.fingerprint.as_str())
                    .collect();
                let seen: HashSet<(&str, u64, i64)> = counted
                    .iter()
                    .filter_map(|fingerprint| stored.inputs.get(*fingerprint))
                    .flatten()
                    .map(|input| (input.path.as_str(), input.size, input.modified))
                    .collect();
                if seen.is_empty() {
                    return None;
                }
                let unseen = files
                    .get(table)
                    .into_iter()
                    .flatten()
                    .filter(|meta| {
                        let path = meta.location.to_string();
                        let id = (
                            path.as_str(),
                            meta.size,
                            meta.last_modified.timestamp_micros(),
                        );
                        !seen.contains(&id)
                    })
                    .map(|meta| meta.size)
                    .sum();
                Some(unseen)
            })
            .collect())
    }

    /// A landed table's rows and exact duplicates: its rows (from the files' footers), minus
    /// the rows of its distinct view ([`crate::engine::distinct_view`]) counted per calendar
    /// month (UTC) of its `column` through the store. Exact duplicates agree on every column, the time
    /// column too, so they fall in one month: a landed file recounts only the months its rows
    /// can touch, and a file landing after a month's stored rows extends the stored count
    /// instead (see `distinct`). `None` when the footers cannot place every row (a file without statistics,
    /// or null times): the caller counts the whole table instead.
    pub async fn duplicates(
        &self,
        engine: &Engine,
        table: &str,
        column: &str,
    ) -> Result<Option<(i64, i64)>> {
        let files = engine.files_of(std::iter::once(&table.to_string())).await;
        let files = files.get(table).map(Vec::as_slice).unwrap_or(&[]);
        let spans = self.spans(engine, files, column).await;
        let mut bounds: Option<(i64, i64)> = None;
        let mut landed = 0i64;
        for span in spans.values() {
            match span {
                Some((low, high, 0, rows)) => {
                    landed += i64::try_from(*rows).unwrap_or(i64::MAX);
                    bounds = Some(match bounds {
                        Some((l, h)) => (l.min(*low), h.max(*high)),
                        None => (*low, *high),
                    });
                }
                _ => return Ok(None),
            }
        }
        let Some((low, high)) = bounds else {
            return Ok(Some((0, 0)));
        };
        let buckets = month_buckets(low, high);
        let count = |relation: String| AggregateQuery {
            table: relation,
            measure: "COUNT(*)".into(),
            filter: None,
            time_column: column.to_string(),
            buckets: buckets.clone(),
            dimensions: Vec::new(),
            equals: Vec::new(),
            attribution: None,
        };
        let sum = |rows: Vec<AggregateRow>| -> i64 {
            rows.iter().filter_map(|r| r.value).sum::<f64>() as i64
        };
        let distinct_view = format!(
            "{}.{}",
            crate::engine::REPORTING_SCHEMA,
            crate::engine::distinct_view(table)
        );
        let query = count(distinct_view);
        let prepared = self.prepare(engine, &query).await?;
        if let Preparation::Stored(stored) = &prepared {
            self.extend_distinct(engine, &query, stored, table, &spans)
                .await?;
        }
        let distinct = sum(self.answer(engine, &query, prepared).await?);
        Ok(Some((landed, landed - distinct)))
    }

    /// What the store holds, for `kpi rollups status` and `prune`.
    pub async fn contents(&self) -> Result<Delta> {
        self.ensure_loaded().await?;
        self.read_new_deltas().await?;
        Ok(self.index.lock().await.merged.delta().clone())
    }

    /// Every object under the store's root, with its size.
    pub async fn objects(&self) -> Result<Vec<ObjectMeta>> {
        let prefix = self.path(manifest::VERSION);
        match self.store.list(Some(&prefix)).try_collect().await {
            Ok(listed) => Ok(listed),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(error) => Err(error.into()),
        }
    }

    /// Replaces the whole manifest by `keep` and deletes every data file it does not name
    /// (and that is older than `grace`, so a build running now keeps its fresh files).
    pub async fn rewrite(&self, keep: Delta, grace: chrono::Duration) -> Result<(usize, u64)> {
        let before = self.objects().await?;
        let name = format!(
            "{}/manifest/{:016}-{}.json",
            manifest::VERSION,
            chrono::Utc::now().timestamp_micros(),
            unique()
        );
        let body = serde_json::to_vec(&keep).map_err(|e| Error::internal(e.to_string()))?;
        self.put_new(&name, body).await?;
        let referenced: HashSet<String> = keep
            .entries
            .iter()
            .map(|e| self.path(&e.file).to_string())
            .collect();
        let cutoff = chrono::Utc::now() - grace;
        let new_manifest = self.path(&name).to_string();
        let manifests = format!("{}/", self.path(&format!("{}/manifest", manifest::VERSION)));
        let (mut removed, mut bytes) = (0, 0);
        for meta in before {
            let path = meta.location.to_string();
            let drop = if path.starts_with(&manifests) {
                path != new_manifest
            } else {
                !referenced.contains(&path) && meta.last_modified < cutoff
            };
            if drop && self.store.delete(&meta.location).await.is_ok() {
                removed += 1;
                bytes += meta.size;
            }
        }
        let mut index = self.index.lock().await;
        *index = Index::default();
        index.deltas.insert(new_manifest);
        add_delta(&mut index, keep);
        Ok((removed, bytes))
    }
}

/// What a metric definition names about a piece: `relation|measure|filter|time column`.
pub fn signature(relation: &str, measure: &str, filter: Option<&str>, time_column: &str) -> String {
    format!(
        "{}|{measure}|{}|{time_column}",
        relation.to_ascii_lowercase(),
        filter.unwrap_or("")
    )
}

fn add_delta(index: &mut Index, delta: Delta) {
    for entry in &delta.entries {
        index.entries.insert(
            (
                entry.piece.clone(),
                entry.bucket.clone(),
                entry.fingerprint.clone(),
            ),
            entry.clone(),
        );
    }
    index.merged.add(delta);
}

/// Adds the current SQL of every view the lineage names.
async fn with_view_sql(engine: &Engine, mut lineage: Lineage) -> Lineage {
    let sql = engine.view_sql().await;
    for (name, text) in lineage.views.iter_mut() {
        *text = sql.get(name).cloned().unwrap_or_default();
    }
    lineage
}

/// A piece's key: a hash of what it computes and every definition it reads: the SQL text of the
/// views (so `kpi rollups prune` can tell an old definition by its text alone) and the plans with
/// every view inlined (so a change below the views, such as a landed table's schema, counts too).
fn piece_key(info: &PieceInfo, lineage: &Lineage) -> String {
    let mut hasher = Sha256::new();
    hasher.update(manifest::VERSION.as_bytes());
    hasher.update(serde_json::to_vec(info).unwrap_or_default());
    for plan in &lineage.plans {
        hasher.update(plan.as_bytes());
        hasher.update([0]);
    }
    for table in lineage.tables.keys() {
        hasher.update(table.as_bytes());
        hasher.update([0]);
    }
    crate::digest::short_hex(&hasher.finalize(), 10)
}

/// The key reach is recorded under: the relation (its name, time column and the SQL of every
/// view it reads) and the joined table.
pub(crate) fn reach_key(query: &AggregateQuery, lineage: &Lineage, table: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [
        manifest::VERSION,
        &query.table.to_ascii_lowercase(),
        &query.time_column,
        table,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (name, sql) in &lineage.views {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(sql.as_bytes());
        hasher.update([0]);
    }
    crate::digest::short_hex(&hasher.finalize(), 10)
}

/// A file version's identity in recorded reach: path, size and modification time.
pub fn file_id(meta: &ObjectMeta) -> String {
    format!(
        "{}|{}|{}",
        meta.location,
        meta.size,
        meta.last_modified.timestamp_micros()
    )
}

/// Calendar months (UTC) covering `[low, high]` (microseconds since the epoch), as buckets.
fn month_buckets(low: i64, high: i64) -> Vec<Bucket> {
    use chrono::{Datelike, NaiveDate};
    let day = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .map(|t| t.date_naive())
            .unwrap_or_default()
    };
    let first_of = |date: NaiveDate| date.with_day(1).unwrap_or(date);
    let next = |date: NaiveDate| {
        let (year, month) = if date.month() == 12 {
            (date.year() + 1, 1)
        } else {
            (date.year(), date.month() + 1)
        };
        NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(date)
    };
    let (mut start, last) = (first_of(day(low)), first_of(day(high)));
    let mut out = Vec::new();
    while start <= last {
        let end = next(start);
        let instant = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        out.push(Bucket {
            start_day: start,
            end_day: end,
            start: instant(start),
            end: instant(end),
        });
        start = end;
    }
    out
}

/// Whether a file counts for the bucket `[start, end)` (UTC microseconds): where its rows'
/// times can fall (the time table's footer statistics, a joined table's reach), widened by
/// [`MARGIN_MICROS`]; a file with neither counts for every bucket.
fn counts_for(
    spans: &HashMap<String, Option<(i64, i64)>>,
    meta: &ObjectMeta,
    start: i64,
    end: i64,
) -> bool {
    overlaps(
        spans.get(meta.location.as_ref()).copied().flatten(),
        start,
        end,
    )
}

/// Whether rows within `span` (none: anywhere) can fall in `[start, end)`, widened by
/// [`MARGIN_MICROS`].
fn overlaps(span: Option<(i64, i64)>, start: i64, end: i64) -> bool {
    match span {
        Some((low, high)) => {
            low <= end.saturating_add(MARGIN_MICROS) && high >= start.saturating_sub(MARGIN_MICROS)
        }
        None => true,
    }
}

/// The input files a piece's buckets can count, in the order fingerprints hash them, each with
/// where its rows can fall (see [`counts_for`]). Buckets that count the same files share one
/// fingerprint, hashed once (a report's 53 weeks of a piece count a dozen different sets).
struct Candidates<'a> {
    lineage: &'a Lineage,
    files: Vec<(InputFile, Option<(i64, i64)>)>,
    known: HashMap<Vec<u32>, (String, Arc<Vec<InputFile>>)>,
}

impl<'a> Candidates<'a> {
    fn new(
        lineage: &'a Lineage,
        files: &BTreeMap<String, Vec<ObjectMeta>>,
        spans: &HashMap<String, Option<(i64, i64)>>,
    ) -> Self {
        let mut candidates: Vec<(InputFile, Option<(i64, i64)>)> = lineage
            .tables
            .keys()
            .flat_map(|table| {
                files.get(table).into_iter().flatten().map(|meta| {
                    let span = spans.get(meta.location.as_ref()).copied().flatten();
                    (input_file(table, meta), span)
                })
            })
            .collect();
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            lineage,
            files: candidates,
            known: HashMap::new(),
        }
    }

    /// `bucket`'s key: the files whose rows can fall in it, and their fingerprint.
    fn key(&mut self, bucket: &Bucket) -> Keyed {
        let (start, end) = (
            bucket.start.timestamp_micros(),
            bucket.end.timestamp_micros(),
        );
        let counted: Vec<u32> = (0u32..)
            .zip(&self.files)
            .filter(|(_, (_, span))| overlaps(*span, start, end))
            .map(|(at, _)| at)
            .collect();
        let (fingerprint, inputs) = match self.known.get(&counted) {
            Some(known) => known.clone(),
            None => {
                let inputs: Vec<InputFile> = counted
                    .iter()
                    .map(|at| self.files[*at as usize].0.clone())
                    .collect();
                let known = (digest(self.lineage, &inputs), Arc::new(inputs));
                self.known.insert(counted, known.clone());
                known
            }
        };
        Keyed {
            bucket: format!("{}..{}@{start}..{end}", bucket.start_day, bucket.end_day),
            fingerprint,
            inputs,
        }
    }
}

fn input_file(table: &str, meta: &ObjectMeta) -> InputFile {
    InputFile {
        table: table.to_string(),
        path: meta.location.to_string(),
        size: meta.size,
        modified: meta.last_modified.timestamp_micros(),
    }
}

/// The fingerprint of every input file of the lineage's tables, and the files.
fn fingerprint(
    lineage: &Lineage,
    files: &BTreeMap<String, Vec<ObjectMeta>>,
) -> (String, Arc<Vec<InputFile>>) {
    let mut inputs: Vec<InputFile> = lineage
        .tables
        .keys()
        .flat_map(|table| {
            files
                .get(table)
                .into_iter()
                .flatten()
                .map(|meta| input_file(table, meta))
        })
        .collect();
    inputs.sort();
    (digest(lineage, &inputs), Arc::new(inputs))
}

/// The hash of the lineage's tables and of `inputs` (sorted).
fn digest(lineage: &Lineage, inputs: &[InputFile]) -> String {
    let mut hasher = Sha256::new();
    for table in lineage.tables.keys() {
        hasher.update(table.as_bytes());
        hasher.update([0]);
    }
    for input in inputs {
        hasher.update(input.table.as_bytes());
        hasher.update([0]);
        hasher.update(input.path.as_bytes());
        hasher.update([0]);
        hasher.update(input.size.to_le_bytes());
        hasher.update(input.modified.to_le_bytes());
    }
    crate::digest::short_hex(&hasher.finalize(), 12)
}

/// A name no other writer picks: time and randomness from the standard library's hasher.
fn unique() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week(start: &str) -> Bucket {
        let day = chrono::NaiveDate::parse_from_str(start, "%Y-%m-%d").expect("day");
        let end = day + chrono::Duration::days(7);
        let instant = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        Bucket {
            start_day: day,
            end_day: end,
            start: instant(day),
            end: instant(end),
        }
    }

    fn file(path: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            location: ObjectPath::from(path),
            last_modified: chrono::Utc::now(),
            size,
            e_tag: None,
            version: None,
        }
    }

    /// Weekly buckets over monthly files: runs never read more than the budget of files, each
    /// bucket is in exactly one run, and a table not traced to its time column is one run.
    #[test]
    fn runs_of_buckets_stay_within_the_byte_budget() {
        let micros = |day: &str| week(day).start.timestamp_micros();
        let months = [
            ("t/2026-09.parquet", "2026-09-01", "2026-09-30"),
            ("t/2026-10.parquet", "2026-10-01", "2026-10-31"),
            ("t/2026-11.parquet", "2026-11-01", "2026-11-30"),
        ];
        let metas: Vec<ObjectMeta> = months.iter().map(|(path, _, _)| file(path, 10)).collect();
        let spans: HashMap<String, Option<(i64, i64)>> = months
            .iter()
            .map(|(path, low, high)| (path.to_string(), Some((micros(low), micros(high)))))
            .collect();
        let files = BTreeMap::from([("t.x".to_string(), metas)]);
        let lineage = Lineage {
            time: Some(("t.x".into(), "at".into())),
            tables: BTreeMap::from([("t.x".to_string(), 1)]),
            ..Lineage::default()
        };
        // Out of order on purpose: runs follow time.
        let buckets: Vec<Bucket> = [
            "2026-11-09",
            "2026-09-07",
            "2026-10-12",
            "2026-09-14",
            "2026-11-16",
        ]
        .iter()
        .map(|d| week(d))
        .collect();
        let runs = runs_within(&buckets, &lineage, &files, &spans, 10);
        assert_eq!(runs, vec![vec![1, 3], vec![2], vec![0, 4]]);
        let one = runs_within(&buckets, &lineage, &files, &spans, 1_000);
        assert_eq!(one, vec![vec![1, 3, 2, 0, 4]]);
        let untraced = runs_within(&buckets, &Lineage::default(), &files, &spans, 10);
        assert_eq!(untraced.len(), 1);
    }

    /// A window holds every bucket it is made for, in both forms (days and instants), whatever
    /// their order, and nothing before the first or after the last.
    #[test]
    fn the_hull_of_buckets_holds_each_of_them() {
        assert_eq!(Bucket::hull(&[]), None);
        let buckets = [week("2026-11-23"), week("2026-11-02"), week("2026-11-09")];
        let window = Bucket::hull(&buckets).expect("a window");
        assert_eq!(window.start_day, week("2026-11-02").start_day);
        assert_eq!(window.end_day, week("2026-11-23").end_day);
        assert_eq!(window.start, week("2026-11-02").start);
        assert_eq!(window.end, week("2026-11-23").end);
        for bucket in &buckets {
            assert!(window.start <= bucket.start && bucket.end <= window.end);
            assert!(window.start_day <= bucket.start_day && bucket.end_day <= window.end_day);
        }
        assert_eq!(Bucket::hull(&buckets[..1]), Some(buckets[0]));
    }
}
