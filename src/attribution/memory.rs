//! `kpi attribution` when its inputs fit a memory budget: both files read once (each by
//! DataFusion's parallel reader, the entity ids interned on a thread of their own) into compact
//! columns (an interned entity, channel and campaign per touch, its instant, its
//! id in one string arena), grouped by a counting sort on the entity, then credited entity by
//! entity. The Markov path counts and the credits are two walks over memory, not two reads and
//! two sorts of the files.
//!
//! It gives the rows of the sorting path ([`super::stream`]) in the same order: entities in
//! their text's byte order, an entity's conversions by `(ts, id)`, each conversion's path in
//! order. When the compact inputs outgrow the budget the run stops reading and says so, and
//! the caller sorts on disk instead (slower, memory bounded by the sort's budget).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Duration, Utc};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use hashbrown::HashTable;

use super::markov::{weights_of, PathCounts};
use super::output::{CreditRows, Output, PerModel};
use super::stream::{
    conversion_columns, projected, touch_columns, Input, Job, Rows, Summary, Wanted,
};
use super::{fractions_into, Model, OnPath};
use crate::error::{Error, Result};

type Fast = foldhash::fast::RandomState;

/// Strings stored end to end: one allocation for millions of ids.
#[derive(Default)]
struct Arena {
    text: String,
    ends: Vec<usize>,
}

impl Arena {
    fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len());
    }

    fn get(&self, index: usize) -> &str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text[start..self.ends[index]]
    }

    /// String `index`'s bytes: to compare (byte order is `str` order) without the char
    /// boundary checks of slicing a `str`.
    fn bytes_of(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text.as_bytes()[start..self.ends[index]]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * size_of::<usize>()
    }
}

/// Codes for repeated strings (entities, channels, campaigns), in order of first sight: each
/// string stored once, in an arena; the hash table holds only codes.
#[derive(Default)]
struct Interner {
    table: HashTable<u32>,
    names: Arena,
    hasher: Fast,
}

impl Interner {
    fn code(&mut self, value: &str) -> u32 {
        // A handful of names (channels, mostly) are found faster by looking than by hashing.
        if self.names.len() <= 8 {
            if let Some(code) =
                (0..self.names.len()).find(|&code| self.names.bytes_of(code) == value.as_bytes())
            {
                return code as u32;
            }
        }
        let hash = self.hasher.hash_one(value);
        let names = &self.names;
        if let Some(code) = self.table.find(hash, |&code| {
            names.bytes_of(code as usize) == value.as_bytes()
        }) {
            return *code;
        }
        let code = self.names.len() as u32;
        self.names.push(value);
        let (names, hasher) = (&self.names, &self.hasher);
        self.table.insert_unique(hash, code, |&code| {
            hasher.hash_one(names.get(code as usize))
        });
        code
    }

    /// [`Interner::code`], skipping the lookup when `value` is the `previous` row's (files
    /// are often written grouped by entity).
    fn code_after<'b>(&mut self, value: &'b str, previous: &mut Option<(&'b str, u32)>) -> u32 {
        match *previous {
            Some((text, code)) if text == value => code,
            _ => {
                let code = self.code(value);
                *previous = Some((value, code));
                code
            }
        }
    }

    fn reserve(&mut self, names: usize) {
        let (table, arena, hasher) = (&mut self.table, &self.names, &self.hasher);
        table.reserve(names, |&code| hasher.hash_one(arena.get(code as usize)));
        self.names.ends.reserve(names);
    }

    fn name(&self, code: u32) -> &str {
        self.names.get(code as usize)
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    fn bytes(&self) -> usize {
        // A code and a control byte per slot.
        self.names.bytes() + self.table.capacity() * 5
    }
}

/// Codes of one batch's column of repeated strings (channels, campaigns) by their Arrow
/// views, when it is a `StringViewArray`: a short value is inline in its view, and values read
/// from a dictionary-encoded Parquet page share their view, so each distinct view is looked up
/// in the [`Interner`] once per batch instead of every row being hashed and compared. Codes are
/// the interner's, so they are the same whichever way a value is found.
struct ViewCodes<'b> {
    views: Option<&'b arrow::array::StringViewArray>,
    seen: HashMap<u128, u32, Fast>,
}

/// Distinct views a batch may remember; past it (values that do not repeat) rows are
/// looked up one by one.
const VIEW_CODES_MAX: usize = 4096;

impl<'b> ViewCodes<'b> {
    fn of(column: &'b arrow::array::ArrayRef) -> Self {
        use arrow::array::AsArray;
        Self {
            views: (column.data_type() == &arrow::datatypes::DataType::Utf8View)
                .then(|| column.as_string_view()),
            seen: HashMap::default(),
        }
    }

    /// The code of the text in `column` of `row` (`None` when null or empty, as
    /// [`Rows::text`]).
    fn code(
        &mut self,
        interner: &mut Interner,
        rows: &Rows<'_>,
        column: usize,
        row: usize,
    ) -> Option<u32> {
        let Some(views) = self.views else {
            return rows.text(column, row).map(|text| interner.code(text));
        };
        if arrow::array::Array::is_null(views, row) {
            return None;
        }
        let view = views.views()[row];
        if let Some(code) = self.seen.get(&view) {
            return Some(*code);
        }
        let text = rows.text(column, row)?;
        let code = interner.code(text);
        if self.seen.len() < VIEW_CODES_MAX {
            self.seen.insert(view, code);
        }
        Some(code)
    }
}

/// Campaign code of a touch without one.
const NO_CAMPAIGN: u32 = u32::MAX;

#[derive(Default)]
struct Touches {
    entity: Vec<u32>,
    ts: Vec<DateTime<Utc>>,
    channel: Vec<u32>,
    campaign: Vec<u32>,
    id: Arena,
}

#[derive(Default)]
struct Conversions {
    entity: Vec<u32>,
    ts: Vec<DateTime<Utc>>,
    revenue: Vec<Option<i64>>,
    id: Arena,
}

/// Both inputs in memory.
#[derive(Default)]
struct Loaded {
    entities: Interner,
    channels: Interner,
    campaigns: Interner,
    touches: Touches,
    conversions: Conversions,
}

impl Loaded {
    /// The channel of touch `row`.
    fn channel(&self, row: usize) -> &str {
        self.channels.name(self.touches.channel[row])
    }

    /// The campaign of touch `row`, if it has one.
    fn campaign(&self, row: usize) -> Option<&str> {
        match self.touches.campaign[row] {
            NO_CAMPAIGN => None,
            code => Some(self.campaigns.name(code)),
        }
    }

    /// Bytes held, counting 4 a row for entity codes still being read.
    fn bytes(&self) -> usize {
        let t = &self.touches;
        let c = &self.conversions;
        self.entities.bytes()
            + self.channels.bytes()
            + self.campaigns.bytes()
            + t.ts.capacity().max(t.entity.capacity()) * 4
            + t.ts.capacity() * size_of::<DateTime<Utc>>()
            + t.channel.capacity() * 4
            + t.campaign.capacity() * 4
            + t.id.bytes()
            + c.ts.capacity().max(c.entity.capacity()) * 4
            + c.ts.capacity() * size_of::<DateTime<Utc>>()
            + c.revenue.capacity() * size_of::<Option<i64>>()
            + c.id.bytes()
    }

    /// Reads a batch of touches, all but the entity (see [`read`]).
    fn add_touches(&mut self, batch: &RecordBatch, origin: &str, ts_column: &str) -> Result<()> {
        let rows = Rows::new(batch, origin, "touch", ts_column);
        let mut channels = ViewCodes::of(batch.column(3));
        let mut campaigns = ViewCodes::of(batch.column(4));
        let t = &mut self.touches;
        for row in 0..batch.num_rows() {
            let (_, id, ts) = rows.key(row)?;
            let Some(channel) = channels.code(&mut self.channels, &rows, 3, row) else {
                return Err(rows.missing(id, "channel"));
            };
            t.ts.push(ts);
            t.channel.push(channel);
            t.campaign.push(
                campaigns
                    .code(&mut self.campaigns, &rows, 4, row)
                    .unwrap_or(NO_CAMPAIGN),
            );
            t.id.push(id);
        }
        Ok(())
    }

    /// Reads a batch of conversions, all but the entity (see [`read`]).
    fn add_conversions(
        &mut self,
        batch: &RecordBatch,
        origin: &str,
        ts_column: &str,
        revenue_column: &str,
    ) -> Result<()> {
        let rows = Rows::new(batch, origin, "conversion", ts_column);
        let c = &mut self.conversions;
        for row in 0..batch.num_rows() {
            let (_, id, ts) = rows.key(row)?;
            c.ts.push(ts);
            c.revenue.push(rows.cents(3, row, id, revenue_column)?);
            c.id.push(id);
        }
        Ok(())
    }
}

/// Rows of a Parquet file by its footer (none for CSV): to size the columns once.
fn rows_hint(path: &Path) -> usize {
    use parquet::file::reader::FileReader;
    if path.extension().and_then(|e| e.to_str()) != Some("parquet") {
        return 0;
    }
    std::fs::File::open(path)
        .ok()
        .and_then(|file| parquet::file::reader::SerializedFileReader::new(file).ok())
        .map_or(0, |reader| {
            reader.metadata().file_metadata().num_rows().max(0) as usize
        })
}

/// Streams `frame`: the entity column (the first) is interned into `entities` on a thread of
/// its own while `rest` reads the other columns here and says whether to go on (it stops
/// when over budget: `None`). Returns the interner and each row's entity code.
async fn read(
    frame: DataFrame,
    entities: Interner,
    mut rest: impl FnMut(&RecordBatch) -> Result<bool>,
) -> Result<Option<(Interner, Vec<u32>)>> {
    let mut stream = frame.execute_stream().await?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<RecordBatch>(8);
    let interning = tokio::task::spawn_blocking(move || {
        let mut entities = entities;
        let mut codes = Vec::new();
        while let Some(batch) = receiver.blocking_recv() {
            let rows = Rows::new(&batch, "", "", "");
            let mut previous = None;
            for row in 0..batch.num_rows() {
                let entity = rows.text(0, row).unwrap_or_default();
                codes.push(entities.code_after(entity, &mut previous));
            }
        }
        (entities, codes)
    });
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        // The arrays are shared, not copied.
        let _ = sender.send(batch.clone()).await;
        if !rest(&batch)? {
            return Ok(None);
        }
    }
    drop(sender);
    let read = interning
        .await
        .map_err(|e| Error::internal(format!("reading entities failed: {e}")))?;
    Ok(Some(read))
}

/// Reads both inputs of `job` into memory; `None` when they outgrow `job.memory_budget`.
async fn load(ctx: &SessionContext, job: &Job<'_>) -> Result<Option<Loaded>> {
    let mut loaded = Loaded::default();
    let budget = job.memory_budget;
    // Columns sized once when the footers give the row counts, and a quick no when even
    // those (at 32 bytes a row) outgrow the budget.
    let (conversion_rows, touch_rows) = (rows_hint(job.conversions), rows_hint(job.touches));
    if (conversion_rows + touch_rows).saturating_mul(32) > budget {
        return Ok(None);
    }
    // At least one entity per conversion, often: no growing of the table up to there.
    loaded.entities.reserve(conversion_rows);
    let c = &mut loaded.conversions;
    c.ts.reserve_exact(conversion_rows);
    c.revenue.reserve_exact(conversion_rows);
    c.id.ends.reserve_exact(conversion_rows);
    let t = &mut loaded.touches;
    t.ts.reserve_exact(touch_rows);
    t.channel.reserve_exact(touch_rows);
    t.campaign.reserve_exact(touch_rows);
    t.id.ends.reserve_exact(touch_rows);

    let ts_column = job.columns.get("conversion_ts");
    let revenue_column = job.columns.get("revenue");
    let wanted = conversion_columns(job.columns, None);
    let Some(codes) = read_file(
        ctx,
        job.conversions,
        wanted,
        &mut loaded,
        |loaded, batch, origin| loaded.add_conversions(batch, origin, ts_column, revenue_column),
        budget,
    )
    .await?
    else {
        return Ok(None);
    };
    loaded.conversions.entity = codes;
    let ts_column = job.columns.get("touch_ts");
    let wanted = touch_columns(job.columns);
    let Some(codes) = read_file(
        ctx,
        job.touches,
        wanted,
        &mut loaded,
        |loaded, batch, origin| loaded.add_touches(batch, origin, ts_column),
        budget,
    )
    .await?
    else {
        return Ok(None);
    };
    loaded.touches.entity = codes;
    Ok((loaded.bytes() <= budget).then_some(loaded))
}

/// Reads the `wanted` columns of the file at `path` into `loaded` with `add` (entity codes
/// aside, see [`read`]), stopping at `budget`; returns each row's entity code.
async fn read_file(
    ctx: &SessionContext,
    path: &Path,
    wanted: Vec<Wanted<'_>>,
    loaded: &mut Loaded,
    add: impl Fn(&mut Loaded, &RecordBatch, &str) -> Result<()>,
    budget: usize,
) -> Result<Option<Vec<u32>>> {
    let input = Input::file(ctx, path).await?;
    let origin = input.origin.clone();
    let frame = projected(input, wanted)?;
    let entities = std::mem::take(&mut loaded.entities);
    let read = read(frame, entities, |batch| {
        add(loaded, batch, &origin)?;
        Ok(loaded.bytes() <= budget)
    })
    .await?;
    Ok(read.map(|(entities, codes)| {
        loaded.entities = entities;
        codes
    }))
}

/// Row numbers grouped by entity code: `order[starts[e]..starts[e + 1]]` are entity `e`'s.
struct Groups {
    starts: Vec<usize>,
    order: Vec<u32>,
}

impl Groups {
    fn new(entity: &[u32], entities: usize) -> Self {
        let mut starts = vec![0usize; entities + 1];
        for code in entity {
            starts[*code as usize + 1] += 1;
        }
        for e in 0..entities {
            starts[e + 1] += starts[e];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; entity.len()];
        for (row, code) in entity.iter().enumerate() {
            let slot = &mut next[*code as usize];
            order[*slot] = row as u32;
            *slot += 1;
        }
        Self { starts, order }
    }

    fn of(&self, entity: usize) -> &[u32] {
        &self.order[self.starts[entity]..self.starts[entity + 1]]
    }

    /// Sorts each entity's rows by `compare`, the entities split over every core.
    fn sort_each(&mut self, compare: impl Fn(u32, u32) -> std::cmp::Ordering + Sync) {
        let starts = &self.starts;
        let parts = split(starts);
        let mut rest = self.order.as_mut_slice();
        let mut slices = Vec::new();
        for pair in parts.windows(2) {
            let (part, after) = rest.split_at_mut(starts[pair[1]] - starts[pair[0]]);
            slices.push((pair[0]..pair[1], part));
            rest = after;
        }
        let compare = &compare;
        std::thread::scope(|scope| {
            for (entities, part) in slices {
                scope.spawn(move || {
                    let offset = starts[entities.start];
                    for entity in entities {
                        let rows = &mut part[starts[entity] - offset..starts[entity + 1] - offset];
                        rows.sort_unstable_by(|&a, &b| compare(a, b));
                    }
                });
            }
        });
    }
}

/// Splits the entities of group `starts` into one range per core with about as many rows
/// each: the ranges' bounds, from 0 to the number of entities.
fn split(starts: &[usize]) -> Vec<usize> {
    let entities = starts.len() - 1;
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rows = starts[entities];
    let mut bounds = vec![0];
    for part in 1..parts {
        let target = rows * part / parts;
        let bound = starts
            .partition_point(|&start| start < target)
            .min(entities);
        bounds.push(bound.max(*bounds.last().unwrap_or(&0)));
    }
    bounds.push(entities);
    bounds
}

/// A touch on a path, as the credit rules read it.
struct Step<'a> {
    ts: DateTime<Utc>,
    channel: &'a str,
    weight: f64,
}

impl OnPath for Step<'_> {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn channel(&self) -> &str {
        self.channel
    }
}

/// The path of a conversion at `ts`: the positions in `touches` (an entity's rows sorted by
/// `(ts, id)`) inside its window, a repeated id counted once (the rule of [`super::path`]).
fn window(
    loaded: &Loaded,
    touches: &[u32],
    ts: DateTime<Utc>,
    lookback: Duration,
    path: &mut Vec<u32>,
) {
    let t = &loaded.touches;
    let earliest = ts - lookback;
    let start = touches.partition_point(|&row| t.ts[row as usize] < earliest);
    let end = touches.partition_point(|&row| t.ts[row as usize] <= ts);
    distinct(loaded, &touches[start..end.max(start)], path);
}

/// `rows` (in path order) into `path`, a touch id repeated next to itself kept once.
fn distinct(loaded: &Loaded, rows: &[u32], path: &mut Vec<u32>) {
    let ids = &loaded.touches.id;
    path.clear();
    for &row in rows {
        if path
            .last()
            .is_none_or(|&last| ids.bytes_of(last as usize) != ids.bytes_of(row as usize))
        {
            path.push(row);
        }
    }
}

/// Entities credited into one batch (about 65,000 rows at 8 touches a conversion).
const CHUNK_ENTITIES: usize = 8_192;

/// Runs `job` in memory; `None` (having written nothing) when its inputs outgrow the budget.
pub(super) async fn run(ctx: &SessionContext, job: &Job<'_>) -> Result<Option<Summary>> {
    let started = std::time::Instant::now();
    let Some(loaded) = load(ctx, job).await? else {
        return Ok(None);
    };
    tracing::debug!(elapsed = ?started.elapsed(), bytes = loaded.bytes(), "attribution inputs read");
    let entities = loaded.entities.len();
    let (t, c) = (&loaded.touches, &loaded.conversions);
    let mut touches = Groups::new(&t.entity, entities);
    let mut conversions = Groups::new(&c.entity, entities);
    // An entity's rows in path order; exact duplicates ordered by what else they carry.
    touches.sort_each(|a, b| {
        let (a, b) = (a as usize, b as usize);
        t.ts[a]
            .cmp(&t.ts[b])
            .then_with(|| t.id.bytes_of(a).cmp(t.id.bytes_of(b)))
            .then_with(|| loaded.channel(a).cmp(loaded.channel(b)))
            .then_with(|| loaded.campaign(a).cmp(&loaded.campaign(b)))
    });
    conversions.sort_each(|a, b| {
        let (a, b) = (a as usize, b as usize);
        c.ts[a]
            .cmp(&c.ts[b])
            .then_with(|| c.id.bytes_of(a).cmp(c.id.bytes_of(b)))
            .then_with(|| c.revenue[a].cmp(&c.revenue[b]))
    });
    tracing::debug!(elapsed = ?started.elapsed(), "attribution inputs grouped");

    // Entities that converted, in their text's order, sorted while the Markov paths are
    // counted.
    let (weights, converting) = std::thread::scope(|scope| {
        let sorting = scope.spawn(|| {
            let mut converting: Vec<u32> = (0..entities as u32)
                .filter(|&e| !conversions.of(e as usize).is_empty())
                .collect();
            let names = &loaded.entities.names;
            converting.sort_unstable_by(|&a, &b| {
                names.bytes_of(a as usize).cmp(names.bytes_of(b as usize))
            });
            converting
        });
        let mut weights = vec![0.0; loaded.channels.len()];
        if job.models.contains(&Model::Markov) {
            let counts = markov_counts(&loaded, &touches, &conversions, job.lookback);
            let by_name = weights_of(counts);
            for (code, weight) in weights.iter_mut().enumerate() {
                *weight = by_name
                    .get(loaded.channels.name(code as u32))
                    .copied()
                    .unwrap_or(0.0);
            }
        }
        let converting = sorting
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (weights, converting)
    });
    tracing::debug!(elapsed = ?started.elapsed(), "attribution Markov weights and entity order");

    let mut output = Output::create(job.out, job.models)?;
    let walk = Walk {
        loaded: &loaded,
        touches: &touches,
        conversions: &conversions,
        weights: &weights,
        job,
    };
    // Chunks of entities credited on every core, written in order by the output's thread.
    let chunks: Vec<&[u32]> = converting.chunks(CHUNK_ENTITIES).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, chunks.len().max(1));
    std::thread::scope(|scope| -> Result<()> {
        let mut receivers = Vec::new();
        for worker in 0..workers {
            let (sender, receiver) = std::sync::mpsc::sync_channel(1);
            receivers.push(receiver);
            let (chunks, walk, mut rows) = (&chunks, &walk, output.new_rows());
            scope.spawn(move || {
                for chunk in chunks.iter().skip(worker).step_by(workers) {
                    let batch = walk.credit(chunk, &mut rows).and_then(|()| rows.take());
                    if sender.send(batch).is_err() {
                        return;
                    }
                }
            });
        }
        for index in 0..chunks.len() {
            let batch = receivers[index % workers]
                .recv()
                .map_err(|_| crate::Error::internal("an attribution worker stopped"))??;
            output.write(batch)?;
        }
        Ok(())
    })?;
    let rows = output.finish()?;
    tracing::debug!(elapsed = ?started.elapsed(), rows, "attribution credits written");
    Ok(Some(Summary {
        touches: t.entity.len(),
        conversions: c.entity.len(),
        rows,
        sorted_on_disk: false,
    }))
}

/// What crediting an entity reads.
struct Walk<'a> {
    loaded: &'a Loaded,
    touches: &'a Groups,
    conversions: &'a Groups,
    weights: &'a [f64],
    job: &'a Job<'a>,
}

impl Walk<'_> {
    /// Appends the credit rows of `entities` to `rows`.
    fn credit(&self, entities: &[u32], rows: &mut CreditRows) -> Result<()> {
        let (loaded, job) = (self.loaded, self.job);
        let (t, c) = (&loaded.touches, &loaded.conversions);
        let (mut path, mut steps, mut per_model) = (Vec::new(), Vec::new(), PerModel::default());
        for &entity in entities {
            let own = self.touches.of(entity as usize);
            for &conversion in self.conversions.of(entity as usize) {
                let conversion = conversion as usize;
                let (id, ts, revenue) = (
                    c.id.get(conversion),
                    c.ts[conversion],
                    c.revenue[conversion],
                );
                window(loaded, own, ts, job.lookback, &mut path);
                if path.is_empty() {
                    rows.push_unattributed(id, revenue);
                    continue;
                }
                steps.clear();
                steps.extend(path.iter().map(|&row| Step {
                    ts: t.ts[row as usize],
                    channel: loaded.channel(row as usize),
                    weight: self.weights[t.channel[row as usize] as usize],
                }));
                per_model.fill(
                    job.models,
                    |model, fractions| {
                        fractions_into(&steps, ts, model, &|step: &Step| step.weight, fractions)
                    },
                    revenue,
                );
                for (position, &row) in path.iter().enumerate() {
                    let row = row as usize;
                    rows.push_touch(
                        id,
                        position,
                        (t.id.get(row), loaded.channel(row), loaded.campaign(row)),
                        &per_model,
                    );
                }
            }
        }
        Ok(())
    }
}

/// Every entity's Markov paths counted (the rules of [`super::markov::entity_paths`]): one
/// converting path per conversion with touches, and the non-converting tail after the last
/// conversion, limited to the lookback before its last touch. The entities are split over
/// every core; counts are whole numbers, so adding them up in any order is exact.
fn markov_counts(
    loaded: &Loaded,
    touches: &Groups,
    conversions: &Groups,
    lookback: Duration,
) -> PathCounts {
    let bounds = split(&touches.starts);
    let parts: Vec<HashMap<Vec<u32>, (f64, f64), Fast>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|pair| {
                let entities = pair[0]..pair[1];
                scope.spawn(move || count_paths(loaded, touches, conversions, lookback, entities))
            })
            .collect();
        handles
            .into_iter()
            // A worker's panic is raised again here, never counted as no paths.
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut by_code: HashMap<Vec<u32>, (f64, f64), Fast> = HashMap::default();
    for part in parts {
        for (codes, (conversions, nulls)) in part {
            let entry = by_code.entry(codes).or_default();
            entry.0 += conversions;
            entry.1 += nulls;
        }
    }
    by_code
        .into_iter()
        .map(|(codes, counts)| {
            let names = codes
                .iter()
                .map(|&code| loaded.channels.name(code).to_string())
                .collect();
            (names, counts)
        })
        .collect()
}

/// The path counts of `entities`, keyed by channel codes.
fn count_paths(
    loaded: &Loaded,
    touches: &Groups,
    conversions: &Groups,
    lookback: Duration,
    entities: std::ops::Range<usize>,
) -> HashMap<Vec<u32>, (f64, f64), Fast> {
    let t = &loaded.touches;
    let c = &loaded.conversions;
    let mut by_code: HashMap<Vec<u32>, (f64, f64), Fast> = HashMap::default();
    let mut count = |rows: &[u32], conversions: f64, nulls: f64| {
        let key: Vec<u32> = rows.iter().map(|&row| t.channel[row as usize]).collect();
        let entry = by_code.entry(key).or_default();
        entry.0 += conversions;
        entry.1 += nulls;
    };
    let mut path = Vec::new();
    for entity in entities {
        let own = touches.of(entity);
        let converted = conversions.of(entity);
        for &conversion in converted {
            window(loaded, own, c.ts[conversion as usize], lookback, &mut path);
            if !path.is_empty() {
                count(&path, 1.0, 0.0);
            }
        }
        let last = converted.iter().map(|&row| c.ts[row as usize]).max();
        let tail_start = last.map_or(0, |last| {
            own.partition_point(|&row| t.ts[row as usize] <= last)
        });
        distinct(loaded, &own[tail_start..], &mut path);
        if let Some(&end) = path.last() {
            let earliest = t.ts[end as usize] - lookback;
            let from = path.partition_point(|&row| t.ts[row as usize] < earliest);
            count(&path[from..], 0.0, 1.0);
        }
    }
    by_code
}
