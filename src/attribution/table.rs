//! `reporting.attribution`: the credits as a table, so attributed numbers are ordinary metrics.
//!
//! The table reads two relations named in `kpi.toml` (`[attribution]`, defaults
//! `reporting.touches` and `reporting.conversions`) with fixed column names:
//!
//! - touches: `touch_id, entity_id, touched_at, channel, campaign` (campaign may be null);
//! - conversions: `conversion_id, entity_id, converted_at, conversion_type, revenue`
//!   (revenue may be null: count-only conversions).
//!
//! and has one row per (conversion, touch) credit, or per unattributed conversion, with the
//! columns of [`schema`]. It is computed with the same streaming core as `kpi attribution`
//! (both inputs sorted by entity, credited one entity at a time). The Markov model's channel
//! weights are computed per conversion type: paths to MQL and paths to closed-won are
//! different chains.
//!
//! One read of the inputs per lookback and data version (a [`Walk`]) keeps the entities that
//! converted and Markov's channel weights; every model's credits are computed from it. A scan
//! whose query bounds `converted_at` to a narrow span (a landed day's week) credits only the
//! conversions in that span: each conversion's credits depend only on its own path (the
//! entity's touches in its lookback) and, under Markov, on the channel weights of all paths,
//! which the walk has. Wider or unbounded scans credit every conversion once, and later scans
//! inside it reuse that. Results are kept (a few settings at a time) until a file lands or a
//! definition changes; the metric layer asks for another model or lookback with a table built
//! for those settings ([`AttributionTable::new`]), and SQL users with
//! `attribution('markov', '60d')`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, Decimal128Builder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
    UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use chrono::Duration;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::io::Columns;
use super::markov::{count_path, entity_paths, weights_of, PathCounts};
use super::stream::{conversion_groups, for_each_entity, touch_groups, Input};
use super::{credit_entity, format_duration, Conversion, Model, Settings, Touch};
use crate::error::Result;

/// Name of the table inside the `reporting` schema.
pub const TABLE_NAME: &str = "attribution";
/// Rows per output batch.
const BATCH_ROWS: usize = 65_536;
/// Credit sets kept computed at once (every model at the default lookback, over every
/// conversion and a few narrow spans, plus a few more).
const CACHED_SETTINGS: usize = 32;
/// Walks of the inputs kept at once (one per lookback asked).
const CACHED_WALKS: usize = 4;
/// The widest span of conversion times credited on its own (the buckets a landed day affects:
/// its week, its month); a wider one credits every conversion, once for all later scans.
const NARROW_MICROS: i64 = 62 * 86_400_000_000;
/// The table's column of conversion times, the one a scan's span bounds.
const CONVERTED_AT: &str = "converted_at";

/// Columns the touches relation must have.
pub const TOUCH_COLUMNS: [&str; 5] = ["touch_id", "entity_id", "touched_at", "channel", "campaign"];
/// Columns the conversions relation must have.
pub const CONVERSION_COLUMNS: [&str; 5] = [
    "conversion_id",
    "entity_id",
    "converted_at",
    "conversion_type",
    "revenue",
];

/// The table's columns.
pub fn schema() -> SchemaRef {
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    Arc::new(Schema::new(vec![
        Field::new("conversion_id", DataType::Utf8, false),
        Field::new("conversion_type", DataType::Utf8, false),
        Field::new("entity_id", DataType::Utf8, false),
        Field::new("converted_at", timestamp, false),
        Field::new("touch_id", DataType::Utf8, true),
        Field::new("position", DataType::UInt32, true),
        Field::new("channel", DataType::Utf8, false),
        Field::new("campaign", DataType::Utf8, true),
        Field::new("credit", DataType::Float64, false),
        Field::new("revenue_credit", DataType::Decimal128(18, 2), true),
        Field::new("model", DataType::Utf8, false),
        Field::new("lookback", DataType::Utf8, false),
    ]))
}

/// Values kept per key with the cache version they were computed at; a value of an older
/// version is never returned, and storing one drops every older one.
#[derive(Debug)]
struct Versioned<V>(crate::cache::Cache<String, (u64, V)>);

impl<V: Clone> Versioned<V> {
    fn new(capacity: usize) -> Self {
        Self(crate::cache::Cache::new(capacity))
    }

    fn get(&self, key: &str, version: u64) -> Option<V> {
        self.0
            .get(&key.to_string())
            .filter(|(at, _)| *at == version)
            .map(|(_, value)| value)
    }

    fn put(&self, key: String, version: u64, value: V) {
        self.0.retain(|_, (at, _)| *at == version);
        self.0.insert(key, (version, value));
    }
}

/// Computed walks and credits shared by every attribution table of one engine, invalidated by
/// a data or definitions version the engine bumps.
#[derive(Debug)]
pub struct Cache {
    version: AtomicU64,
    credits: Versioned<Arc<Vec<RecordBatch>>>,
    walks: Versioned<Arc<Walk>>,
    /// One computation at a time: concurrent identical requests wait and reuse the result.
    computing: tokio::sync::Mutex<()>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            version: AtomicU64::new(0),
            credits: Versioned::new(CACHED_SETTINGS),
            walks: Versioned::new(CACHED_WALKS),
            computing: tokio::sync::Mutex::new(()),
        }
    }
}

impl Cache {
    /// Marks every computed result stale (a file landed, a view changed).
    pub fn invalidate(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    fn current(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }
}

/// Conversion times to credit: `[from, to)` in UTC microseconds, an open end unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    from: Option<i64>,
    to: Option<i64>,
}

impl Span {
    /// Every conversion.
    const ALL: Span = Span {
        from: None,
        to: None,
    };

    /// The span a scan's pushed-down filters bound `converted_at` to (comparisons with a
    /// timestamp literal; any other filter bounds nothing). Credits outside it may be left out
    /// of the scan: the filters are applied again above it.
    fn of_filters(filters: &[Expr]) -> Span {
        let mut span = Span::ALL;
        for filter in filters {
            if let Some((bound, is_lower)) = bound_of(filter) {
                if is_lower {
                    span.from = Some(span.from.map_or(bound, |from| from.max(bound)));
                } else {
                    span.to = Some(span.to.map_or(bound, |to| to.min(bound)));
                }
            }
        }
        span
    }

    /// The span credited for a scan bounded to `self`: itself when narrow, else every
    /// conversion (computed once, it answers every later scan).
    fn credited(self) -> Span {
        match (self.from, self.to) {
            (Some(from), Some(to)) if to.saturating_sub(from) <= NARROW_MICROS => self,
            _ => Span::ALL,
        }
    }

    fn holds(&self, micros: i64) -> bool {
        self.from.is_none_or(|from| micros >= from) && self.to.is_none_or(|to| micros < to)
    }
}

/// `converted_at` compared with a timestamp literal: the bound in UTC microseconds, and
/// whether it is a lower bound (inclusive) or an upper one (exclusive).
fn bound_of(filter: &Expr) -> Option<(i64, bool)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return None;
    };
    let (op, literal) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(column), Expr::Literal(value, _)) if column.name == CONVERTED_AT => {
            (*op, value)
        }
        (Expr::Literal(value, _), Expr::Column(column)) if column.name == CONVERTED_AT => {
            (op.swap()?, value)
        }
        _ => return None,
    };
    let micros = match literal {
        ScalarValue::TimestampMicrosecond(Some(micros), _) => *micros,
        ScalarValue::TimestampNanosecond(Some(nanos), _) => nanos.div_euclid(1_000),
        ScalarValue::TimestampMillisecond(Some(millis), _) => millis.checked_mul(1_000)?,
        ScalarValue::TimestampSecond(Some(seconds), _) => seconds.checked_mul(1_000_000)?,
        _ => return None,
    };
    // Bounds are widened to whole microseconds on the safe side: the span may hold more
    // conversions than the filter keeps, never fewer.
    match op {
        Operator::GtEq | Operator::Gt => Some((micros, true)),
        Operator::Lt | Operator::LtEq => Some((micros.checked_add(1)?, false)),
        _ => None,
    }
}

/// The credits under one model and lookback, as a table.
#[derive(Debug, Clone)]
pub struct AttributionTable {
    touches: String,
    conversions: String,
    settings: Settings,
    cache: Arc<Cache>,
}

impl AttributionTable {
    /// A table over the configured touches and conversions under `settings`.
    pub fn new(
        inputs: &crate::config::AttributionConfig,
        settings: Settings,
        cache: Arc<Cache>,
    ) -> Self {
        Self {
            touches: inputs.touches.clone(),
            conversions: inputs.conversions.clone(),
            settings,
            cache,
        }
    }

    /// The touches and conversions relations it reads.
    pub fn inputs(&self) -> [&str; 2] {
        [&self.touches, &self.conversions]
    }

    /// The model and lookback.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Inputs and settings in one string: equal keys give equal credits on equal data.
    pub fn key(&self) -> String {
        self.key_for(self.settings)
    }

    fn key_for(&self, settings: Settings) -> String {
        format!("{}|{}|{:?}", self.touches, self.conversions, settings)
    }

    /// Returns the credits of every conversion, computing them unless the current version has
    /// them, reading the inputs in `ctx` (a cluster executor's own engine reads them in its
    /// serving session).
    pub async fn credits_in(&self, ctx: &SessionContext) -> Result<Arc<Vec<RecordBatch>>> {
        self.credits_within(ctx, Span::ALL).await
    }

    /// Returns credits of at least the conversions in `span` (see [`Span::credited`]).
    async fn credits_within(
        &self,
        ctx: &SessionContext,
        span: Span,
    ) -> Result<Arc<Vec<RecordBatch>>> {
        let span = span.credited();
        let every = self.key();
        let key = match span == Span::ALL {
            true => every.clone(),
            false => format!("{every}|{span:?}"),
        };
        let cached = || {
            let version = self.cache.current();
            let credits = &self.cache.credits;
            credits
                .get(&every, version)
                .or_else(|| credits.get(&key, version))
        };
        if let Some(batches) = cached() {
            return Ok(batches);
        }
        let _turn = self.cache.computing.lock().await;
        if let Some(batches) = cached() {
            return Ok(batches);
        }
        let version = self.cache.current();
        let started = Instant::now();
        let lookback = self.settings.lookback;
        let walk_key = format!("{}|{}|{lookback:?}", self.touches, self.conversions);
        let walk = match self.cache.walks.get(&walk_key, version) {
            Some(walk) => walk,
            None => {
                let walk = Arc::new(walk(ctx, &self.touches, &self.conversions, lookback).await?);
                tracing::info!(
                    "attribution: {} converting entities read ({} lookback) in {} ms",
                    walk.converted.len(),
                    format_duration(lookback),
                    started.elapsed().as_millis()
                );
                self.cache.walks.put(walk_key, version, Arc::clone(&walk));
                walk
            }
        };
        let batches = Arc::new(walk.credit(self.settings, span)?);
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        tracing::info!(
            "attribution ({}): {rows} credit rows{} in {} ms",
            self.settings.label(),
            match span == Span::ALL {
                true => String::new(),
                false => " of a narrow span".to_string(),
            },
            started.elapsed().as_millis()
        );
        self.cache.credits.put(key, version, Arc::clone(&batches));
        Ok(batches)
    }
}

#[async_trait]
impl TableProvider for AttributionTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// Bounds on `converted_at` narrow what a scan credits; they are applied again above it.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| match bound_of(filter) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("attribution needs a SessionState".into()))?;
        let batches = self
            .credits_within(
                &SessionContext::new_with_state(state.clone()),
                Span::of_filters(filters),
            )
            .await
            .map_err(|error| DataFusionError::Execution(error.message))?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches.as_ref().clone()],
            schema(),
            projection.cloned(),
        )?)
    }
}

/// `attribution(model [, lookback])` in SQL: the table under another model or lookback.
#[derive(Debug)]
pub struct AttributionFunction {
    config: crate::config::AttributionConfig,
    cache: Arc<Cache>,
}

impl AttributionFunction {
    /// The function for an engine's configuration and cache.
    pub fn new(config: &crate::config::AttributionConfig, cache: Arc<Cache>) -> Self {
        Self {
            config: config.clone(),
            cache,
        }
    }
}

impl TableFunctionImpl for AttributionFunction {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let usage = "use attribution('linear') or attribution('markov', '60d')";
        let mut texts = Vec::new();
        for expr in args.exprs() {
            match expr {
                Expr::Literal(ScalarValue::Utf8(Some(text)), _) => texts.push(text.clone()),
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "attribution(): `{other}` is not a text literal; {usage}"
                    )))
                }
            }
        }
        if texts.is_empty() || texts.len() > 2 {
            return Err(DataFusionError::Plan(format!(
                "attribution() takes a model and an optional lookback; {usage}"
            )));
        }
        let settings = self
            .config
            .settings(
                texts.first().map(String::as_str),
                texts.get(1).map(String::as_str),
            )
            .map_err(|message| DataFusionError::Plan(format!("attribution(): {message}")))?;
        Ok(Arc::new(AttributionTable::new(
            &self.config,
            settings,
            Arc::clone(&self.cache),
        )))
    }
}

/// The view-contract column names, in `kpi attribution`'s key terms.
fn view_columns() -> Result<Columns> {
    Columns::parse(&[
        "touch_entity=entity_id,touch_ts=touched_at".to_string(),
        "conversion_entity=entity_id,conversion_ts=converted_at".to_string(),
    ])
}

async fn input(ctx: &SessionContext, name: &str) -> Result<Input> {
    Ok(Input {
        origin: name.to_string(),
        frame: ctx.table(name).await?,
        is_view: true,
    })
}

/// One read of the inputs at one lookback: the entities that converted, with their touches
/// and their conversions by type, and Markov's channel weights per conversion type (from every
/// entity's paths, converting or not).
#[derive(Debug)]
struct Walk {
    lookback: Duration,
    converted: Vec<(Vec<Touch>, ByKind)>,
    weights: HashMap<String, HashMap<String, f64>>,
}

/// Reads both inputs sorted by entity, one entity at a time.
async fn walk(
    ctx: &SessionContext,
    touches: &str,
    conversions: &str,
    lookback: Duration,
) -> Result<Walk> {
    let columns = view_columns()?;
    let mut paths = MarkovPaths::default();
    let mut converted: Vec<(Vec<Touch>, ByKind)> = Vec::new();
    let mut touch_rows = touch_groups(input(ctx, touches).await?, &columns).await?;
    let mut conversion_rows = conversion_groups(
        input(ctx, conversions).await?,
        &columns,
        Some("conversion_type"),
    )
    .await?;
    // Both inputs' reads and sorts side by side: the walk waits for the slower, not the sum.
    futures::future::try_join(touch_rows.start(), conversion_rows.start()).await?;
    for_each_entity(&mut touch_rows, &mut conversion_rows, |t, c| {
        let grouped = by_kind(c);
        paths.add(&t, &grouped, lookback);
        if !grouped.is_empty() {
            converted.push((t, grouped));
        }
        Ok(())
    })
    .await?;
    Ok(Walk {
        lookback,
        converted,
        weights: paths.weights(),
    })
}

impl Walk {
    /// The credits under `settings` (at the walk's lookback) of the conversions in `span`,
    /// entity by entity in the walk's order.
    fn credit(&self, settings: Settings, span: Span) -> Result<Vec<RecordBatch>> {
        let mut output = Rows::new(settings);
        let no_weights = HashMap::new();
        for (touches, grouped) in &self.converted {
            for (kind, group) in grouped {
                let chosen: Cow<[Conversion]> = match span == Span::ALL {
                    true => Cow::Borrowed(group),
                    false => Cow::Owned(
                        group
                            .iter()
                            .filter(|c| span.holds(c.ts.timestamp_micros()))
                            .cloned()
                            .collect(),
                    ),
                };
                if chosen.is_empty() {
                    continue;
                }
                let kind_weights = match settings.model {
                    Model::Markov => self.weights.get(kind).unwrap_or(&no_weights),
                    _ => &no_weights,
                };
                let weight = |channel: &str| kind_weights.get(channel).copied().unwrap_or(0.0);
                let credits =
                    credit_entity(touches, &chosen, settings.model, self.lookback, &weight);
                output.push_all(kind, &chosen, &credits)?;
            }
        }
        output.finish()
    }
}

/// One entity's conversions by type.
type ByKind = Vec<(String, Vec<Conversion>)>;

/// Groups one entity's conversions by type (sorted, so the order is stable).
fn by_kind(conversions: Vec<Conversion>) -> ByKind {
    let mut groups: std::collections::BTreeMap<String, Vec<Conversion>> = Default::default();
    for conversion in conversions {
        groups
            .entry(conversion.kind.clone().unwrap_or_default())
            .or_default()
            .push(conversion);
    }
    groups.into_iter().collect()
}

/// Path counts for Markov channel weights, per conversion type, gathered one entity at a time.
/// For a type, every entity contributes its converting paths to that type and one
/// non-converting path (its touches after its last conversion of that type, or all of them if
/// it never converted to it). The types are known only at the end, so the walk counts every
/// entity's never-converted path once (`base`) and, per type an entity converted to, the
/// difference its conversions make (`by_kind`); counts are whole numbers, so the sums are exact.
#[derive(Default)]
struct MarkovPaths {
    base: PathCounts,
    by_kind: HashMap<String, PathCounts>,
}

impl MarkovPaths {
    fn add(
        &mut self,
        touches: &[Touch],
        grouped: &[(String, Vec<Conversion>)],
        lookback: Duration,
    ) {
        let never = entity_paths(touches, &[], lookback);
        for path in &never {
            count_known(&mut self.base, path, 1.0);
        }
        for (kind, own) in grouped {
            let counts = match self.by_kind.get_mut(kind) {
                Some(counts) => counts,
                None => self.by_kind.entry(kind.clone()).or_default(),
            };
            for path in entity_paths(touches, own, lookback) {
                count_path(counts, path, 1.0);
            }
            for path in &never {
                count_known(counts, path, -1.0);
            }
        }
    }

    /// Channel weights per conversion type.
    fn weights(self) -> HashMap<String, HashMap<String, f64>> {
        let Self { base, by_kind } = self;
        by_kind
            .into_iter()
            .map(|(kind, difference)| {
                let mut counts = base.clone();
                for (channels, (conversions, nulls)) in difference {
                    let entry = counts.entry(channels).or_default();
                    entry.0 += conversions;
                    entry.1 += nulls;
                }
                (kind, weights_of(counts).into_iter().collect())
            })
            .collect()
    }
}

/// [`count_path`] for a path that is kept: its channels are copied only the first time that
/// path is counted (most entities' paths repeat a few common ones).
fn count_known(counts: &mut PathCounts, path: &super::markov::PathCount, sign: f64) {
    let entry = match counts.get_mut(&path.channels) {
        Some(entry) => entry,
        None => counts.entry(path.channels.clone()).or_default(),
    };
    entry.0 += sign * path.conversions;
    entry.1 += sign * path.nulls;
}

/// Output batches under construction.
struct Rows {
    model: String,
    lookback: String,
    batches: Vec<RecordBatch>,
    conversion: StringBuilder,
    kind: StringBuilder,
    entity: StringBuilder,
    converted_at: TimestampMicrosecondBuilder,
    touch: StringBuilder,
    position: UInt32Builder,
    channel: StringBuilder,
    campaign: StringBuilder,
    credit: Float64Builder,
    revenue: Decimal128Builder,
    len: usize,
}

impl Rows {
    fn new(settings: Settings) -> Self {
        Self {
            model: settings.model.name().to_string(),
            lookback: format_duration(settings.lookback),
            batches: Vec::new(),
            conversion: StringBuilder::new(),
            kind: StringBuilder::new(),
            entity: StringBuilder::new(),
            converted_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            touch: StringBuilder::new(),
            position: UInt32Builder::new(),
            channel: StringBuilder::new(),
            campaign: StringBuilder::new(),
            credit: Float64Builder::new(),
            revenue: Decimal128Builder::new().with_data_type(DataType::Decimal128(18, 2)),
            len: 0,
        }
    }

    fn push(&mut self, kind: &str, conversion: &Conversion, credit: &super::Credit) -> Result<()> {
        self.conversion.append_value(&credit.conversion_id);
        self.kind.append_value(kind);
        self.entity.append_value(&conversion.entity);
        self.converted_at
            .append_value(conversion.ts.timestamp_micros());
        self.touch.append_option(credit.touch_id.as_deref());
        self.position
            .append_option(credit.position.map(|p| p as u32));
        self.channel.append_value(&credit.channel);
        self.campaign.append_option(credit.campaign.as_deref());
        self.credit.append_value(credit.credit);
        self.revenue
            .append_option(credit.revenue_cents.map(i128::from));
        self.len += 1;
        if self.len >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes an entity's credits for `group` (conversions of one type).
    fn push_all(
        &mut self,
        kind: &str,
        group: &[Conversion],
        credits: &[super::Credit],
    ) -> Result<()> {
        // An entity has a conversion or a few of a kind: looking each credit's up in order is
        // cheaper than hashing them; many are indexed.
        let by_id: Option<HashMap<&str, &Conversion>> =
            (group.len() > 8).then(|| group.iter().map(|c| (c.id.as_str(), c)).collect());
        for credit in credits {
            let id = credit.conversion_id.as_str();
            let conversion = match &by_id {
                Some(by_id) => by_id.get(id).copied(),
                // The last of equal ids, as the index keeps.
                None => group.iter().rev().find(|c| c.id == id),
            };
            if let Some(conversion) = conversion {
                self.push(kind, conversion, credit)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let len = std::mem::take(&mut self.len);
        let mut model = StringBuilder::new();
        let mut lookback = StringBuilder::new();
        for _ in 0..len {
            model.append_value(&self.model);
            lookback.append_value(&self.lookback);
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.conversion.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.entity.finish()),
            Arc::new(self.converted_at.finish()),
            Arc::new(self.touch.finish()),
            Arc::new(self.position.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.campaign.finish()),
            Arc::new(self.credit.finish()),
            Arc::new(self.revenue.finish()),
            Arc::new(model.finish()),
            Arc::new(lookback.finish()),
        ];
        self.batches.push(RecordBatch::try_new(schema(), arrays)?);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<RecordBatch>> {
        self.flush()?;
        Ok(self.batches)
    }
}

/// Checks that a relation's columns satisfy the contract: returns what is missing.
pub fn missing_columns(schema: &Schema, required: &[&str]) -> Vec<String> {
    required
        .iter()
        .filter(|name| schema.field_with_name(name).is_err())
        .map(|name| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Decimal128Type, Float64Type, UInt32Type};
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::attribution::{attribute, Credit};

    /// Credits by (conversion, position): channel, credit, revenue cents.
    type ByPosition = BTreeMap<(String, Option<u32>), (String, f64, Option<i64>)>;

    fn from_batches(batches: &[RecordBatch], kind: &str) -> ByPosition {
        let mut out = BTreeMap::new();
        for batch in batches {
            let column = |name: &str| batch.column_by_name(name).expect(name).clone();
            let (ids, kinds, channels) = (
                column("conversion_id"),
                column("conversion_type"),
                column("channel"),
            );
            let (positions, credits, revenue) = (
                column("position"),
                column("credit"),
                column("revenue_credit"),
            );
            let positions = positions.as_primitive::<UInt32Type>();
            let credits = credits.as_primitive::<Float64Type>();
            let revenue = revenue.as_primitive::<Decimal128Type>();
            for row in 0..batch.num_rows() {
                if kinds.as_string::<i32>().value(row) != kind {
                    continue;
                }
                out.insert(
                    (
                        ids.as_string::<i32>().value(row).to_string(),
                        (!positions.is_null(row)).then(|| positions.value(row)),
                    ),
                    (
                        channels.as_string::<i32>().value(row).to_string(),
                        credits.value(row),
                        (!revenue.is_null(row)).then(|| revenue.value(row) as i64),
                    ),
                );
            }
        }
        out
    }

    fn from_credits(credits: &[Credit]) -> ByPosition {
        credits
            .iter()
            .map(|c| {
                (
                    (c.conversion_id.clone(), c.position.map(|p| p as u32)),
                    (c.channel.clone(), c.credit, c.revenue_cents),
                )
            })
            .collect()
    }

    /// The table credits every model, Markov's weights per conversion type included, in one
    /// read: each type's credits equal the in-memory reference over that type's conversions,
    /// over every conversion and over a narrow span of conversion times.
    #[tokio::test]
    async fn one_walk_credits_equal_the_reference_for_every_model_type_and_span() {
        let channels = ["direct", "email", "paid_search", "social", "referral"];
        let kinds = ["mql", "opportunity_created", "closed_won"];
        let base = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let (mut touches, mut conversions) = (Vec::new(), Vec::new());
        for entity in 0..60 {
            for t in 0..next(6) {
                touches.push(Touch {
                    id: format!("t{entity}-{t}"),
                    entity: format!("e{entity}"),
                    ts: base + Duration::hours(next(24 * 90) as i64),
                    channel: channels[next(5) as usize].to_string(),
                    campaign: (next(2) == 0).then(|| format!("c{}", next(3))),
                });
            }
            for c in 0..next(3) {
                let kind = kinds[next(3) as usize];
                conversions.push(Conversion {
                    id: format!("{kind}:{entity}-{c}"),
                    entity: format!("e{entity}"),
                    ts: base + Duration::hours(next(24 * 100) as i64),
                    revenue_cents: (kind != "mql").then(|| next(1_000_000) as i64),
                    kind: Some(kind.to_string()),
                });
            }
        }
        let ctx = SessionContext::new();
        let time = |ts: DateTime<Utc>| format!("TIMESTAMP '{}'", ts.format("%Y-%m-%dT%H:%M:%S"));
        let touch_rows: Vec<String> = touches
            .iter()
            .map(|t| {
                let campaign = t
                    .campaign
                    .as_ref()
                    .map_or("NULL".into(), |c| format!("'{c}'"));
                format!(
                    "('{}', '{}', {}, '{}', {campaign})",
                    t.id,
                    t.entity,
                    time(t.ts),
                    t.channel
                )
            })
            .collect();
        let conversion_rows: Vec<String> = conversions
            .iter()
            .map(|c| {
                let revenue = c
                    .revenue_cents
                    .map_or("NULL".into(), |r| format!("{}.{:02}", r / 100, r % 100));
                format!(
                    "('{}', '{}', {}, '{}', CAST({revenue} AS DECIMAL(12, 2)))",
                    c.id,
                    c.entity,
                    time(c.ts),
                    c.kind.as_deref().unwrap_or_default()
                )
            })
            .collect();
        for sql in [
            format!(
                "CREATE VIEW touches AS SELECT column1 AS touch_id, column2 AS entity_id, \
                 column3 AS touched_at, column4 AS channel, column5 AS campaign FROM (VALUES {})",
                touch_rows.join(", ")
            ),
            format!(
                "CREATE VIEW conversions AS SELECT column1 AS conversion_id, column2 AS entity_id, \
                 column3 AS converted_at, column4 AS conversion_type, column5 AS revenue \
                 FROM (VALUES {})",
                conversion_rows.join(", ")
            ),
        ] {
            ctx.sql(&sql).await.expect("the inputs");
        }
        let lookback = Duration::days(30);
        let walk = walk(&ctx, "touches", "conversions", lookback)
            .await
            .expect("the walk");
        // A narrow span (a month of the conversions' 100 days) credits only its conversions,
        // each exactly as when every conversion is credited.
        let (from, to) = (base + Duration::days(30), base + Duration::days(61));
        let narrow = Span {
            from: Some(from.timestamp_micros()),
            to: Some(to.timestamp_micros()),
        };
        assert_eq!(narrow.credited(), narrow, "a month is narrow");
        let models = [
            Model::FirstTouch,
            Model::LastTouch,
            Model::LastNonDirect,
            Model::Linear,
            Model::PositionBased,
            Model::TimeDecay {
                half_life: Duration::days(7),
            },
            Model::Markov,
        ];
        for (model, span) in models
            .iter()
            .flat_map(|model| [(*model, Span::ALL), (*model, narrow)])
        {
            let settings = Settings { model, lookback };
            let batches = walk.credit(settings, span).expect("credits");
            for kind in kinds {
                let own: Vec<Conversion> = conversions
                    .iter()
                    .filter(|c| c.kind.as_deref() == Some(kind))
                    .cloned()
                    .collect();
                let inside: Vec<&str> = own
                    .iter()
                    .filter(|c| span.holds(c.ts.timestamp_micros()))
                    .map(|c| c.id.as_str())
                    .collect();
                let mut expected = from_credits(&attribute(&touches, &own, model, lookback));
                expected.retain(|(id, _), _| inside.contains(&id.as_str()));
                let actual = from_batches(&batches, kind);
                assert!(!expected.is_empty(), "{settings:?} {span:?} {kind}");
                assert_eq!(
                    actual.keys().collect::<Vec<_>>(),
                    expected.keys().collect::<Vec<_>>(),
                    "{settings:?} {span:?} {kind}"
                );
                for (key, (channel, credit, revenue)) in &expected {
                    let got = &actual[key];
                    assert_eq!(&got.0, channel, "{settings:?} {kind} {key:?}");
                    assert!((got.1 - credit).abs() < 1e-12, "{settings:?} {key:?}");
                    assert_eq!(&got.2, revenue, "{settings:?} {kind} {key:?}");
                }
            }
        }
    }

    /// A scan's bounds on `converted_at` give its span, on the safe side; anything else
    /// bounds nothing.
    #[test]
    fn the_span_of_a_scan_comes_from_its_bounds_on_converted_at() {
        use datafusion::prelude::{col, lit};
        let at = |micros: i64| lit(ScalarValue::TimestampMicrosecond(Some(micros), None));
        let span = Span::of_filters(&[
            col("converted_at").gt_eq(at(1_000)),
            col("converted_at").lt(at(5_000)),
            col("conversion_type").eq(lit("mql")),
        ]);
        assert!(span.holds(1_000) && span.holds(4_999) && !span.holds(999));
        assert!(!span.holds(5_001), "{span:?}");
        let swapped = Span::of_filters(&[at(5_000).gt(col("converted_at"))]);
        assert_eq!(swapped.from, None);
        assert!(swapped.holds(4_999) && !swapped.holds(5_001));
        let nanos =
            Span::of_filters(&[col("converted_at")
                .lt_eq(lit(ScalarValue::TimestampNanosecond(Some(4_999_500), None)))]);
        assert!(nanos.holds(4_999), "{nanos:?}");
        assert_eq!(Span::of_filters(&[col("touched_at").gt(at(1))]), Span::ALL);
        assert_eq!(
            Span::of_filters(&[col("converted_at").eq(at(1))]),
            Span::ALL
        );
        let year = Span {
            from: Some(0),
            to: Some(365 * 86_400_000_000),
        };
        assert_eq!(year.credited(), Span::ALL, "a wide span credits everything");
    }
}
