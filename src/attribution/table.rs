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
//! A scan computes the credits for the table's model and lookback once per data version and
//! keeps them (a few settings at a time) until a file lands or a definition changes; the
//! metric layer asks for another model or lookback with a table built for those settings
//! ([`AttributionTable::new`]), and SQL users with `attribution('markov', '60d')`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, AsArray, Decimal128Builder, Float64Builder, StringBuilder,
    TimestampMicrosecondBuilder, UInt32Builder,
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
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::io::Columns;
use super::markov::{channel_weights, entity_paths, PathCount};
use super::stream::{conversion_groups, for_each_entity, touch_groups, Input};
use super::{credit_entity, format_duration, Conversion, Model, Settings};
use crate::error::Result;

/// Name of the table inside the `reporting` schema.
pub const TABLE_NAME: &str = "attribution";
/// Rows per output batch.
const BATCH_ROWS: usize = 65_536;
/// Settings kept computed at once (every model at the default lookback, plus a few).
const CACHED_SETTINGS: usize = 16;

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

/// Computed credits with the cache version they were computed at.
type Entry = (u64, Arc<Vec<RecordBatch>>);

/// Computed credits shared by every attribution table of one engine, invalidated by a data
/// or definitions version the engine bumps.
#[derive(Debug)]
pub struct Cache {
    version: AtomicU64,
    entries: crate::cache::Cache<String, Entry>,
    /// One computation at a time: concurrent identical requests wait and reuse the result.
    computing: tokio::sync::Mutex<()>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            version: AtomicU64::new(0),
            entries: crate::cache::Cache::new(CACHED_SETTINGS),
            computing: tokio::sync::Mutex::new(()),
        }
    }
}

impl Cache {
    /// Marks every computed result stale (a file landed, a view changed).
    pub fn invalidate(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self, key: &str) -> Option<Arc<Vec<RecordBatch>>> {
        let version = self.version.load(Ordering::SeqCst);
        self.entries
            .get(&key.to_string())
            .filter(|(at, _)| *at == version)
            .map(|(_, batches)| batches)
    }

    fn put(&self, key: String, version: u64, batches: Arc<Vec<RecordBatch>>) {
        self.entries.retain(|_, (at, _)| *at == version);
        self.entries.insert(key, (version, batches));
    }
}

/// The credits under one model and lookback, as a table.
#[derive(Debug, Clone)]
pub struct AttributionTable {
    touches: String,
    conversions: String,
    settings: Settings,
    /// The half-life of `time_decay` when it is computed beside another model.
    half_life: Duration,
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
            half_life: inputs.half_life,
            cache,
        }
    }

    /// The touches and conversions relations it reads.
    pub fn inputs(&self) -> [&str; 2] {
        [&self.touches, &self.conversions]
    }

    /// Inputs and settings in one string: equal keys give equal credits on equal data.
    pub fn key(&self) -> String {
        self.key_for(self.settings)
    }

    fn key_for(&self, settings: Settings) -> String {
        format!("{}|{}|{:?}", self.touches, self.conversions, settings)
    }

    /// The settings computed in the same pass as this table's: every model but `markov` at
    /// the same lookback (one read of the inputs credits them all; a report comparing models
    /// asks for each), or `markov` alone (its channel weights need a pass of their own).
    fn pass(&self) -> Vec<Settings> {
        let mut all = vec![self.settings];
        if self.settings.model == Model::Markov {
            return all;
        }
        let lookback = self.settings.lookback;
        for model in [
            Model::FirstTouch,
            Model::LastTouch,
            Model::LastNonDirect,
            Model::Linear,
            Model::PositionBased,
            Model::TimeDecay {
                half_life: self.half_life,
            },
        ] {
            let settings = Settings { model, lookback };
            if !all.contains(&settings) {
                all.push(settings);
            }
        }
        all
    }

    /// Returns the credits, computing them unless the current version has them.
    async fn credits(&self, state: &SessionState) -> Result<Arc<Vec<RecordBatch>>> {
        let key = self.key();
        if let Some(batches) = self.cache.get(&key) {
            return Ok(batches);
        }
        let _turn = self.cache.computing.lock().await;
        if let Some(batches) = self.cache.get(&key) {
            return Ok(batches);
        }
        let version = self.cache.version.load(Ordering::SeqCst);
        let started = Instant::now();
        let ctx = SessionContext::new_with_state(state.clone());
        let pass = self.pass();
        let computed = compute(&ctx, &self.touches, &self.conversions, &pass).await?;
        let mut asked = None;
        for (settings, batches) in pass.iter().zip(computed) {
            let batches = Arc::new(batches);
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            tracing::info!(
                "attribution ({}): {rows} credit rows in {} ms",
                settings.label(),
                started.elapsed().as_millis()
            );
            self.cache
                .put(self.key_for(*settings), version, Arc::clone(&batches));
            asked.get_or_insert(batches);
        }
        asked.ok_or_else(|| crate::Error::internal("attribution computed no model"))
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

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("attribution needs a SessionState".into()))?;
        let batches = self
            .credits(state)
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

/// Credits every conversion of `conversions` under each of `all` in one read of the inputs;
/// one set of batches per settings, in order.
async fn compute(
    ctx: &SessionContext,
    touches: &str,
    conversions: &str,
    all: &[Settings],
) -> Result<Vec<Vec<RecordBatch>>> {
    let columns = view_columns()?;
    let mut weights: HashMap<String, HashMap<String, f64>> = HashMap::new();
    if let Some(markov) = all.iter().find(|settings| settings.model == Model::Markov) {
        weights = markov_weights(ctx, touches, conversions, &columns, markov.lookback).await?;
    }
    let no_weights = HashMap::new();
    let mut outputs: Vec<Rows> = all.iter().map(|settings| Rows::new(*settings)).collect();
    let mut touch_rows = touch_groups(input(ctx, touches).await?, &columns).await?;
    let mut conversion_rows = conversion_groups(
        input(ctx, conversions).await?,
        &columns,
        Some("conversion_type"),
    )
    .await?;
    for_each_entity(&mut touch_rows, &mut conversion_rows, |t, c| {
        for (kind, group) in by_kind(c) {
            let kind_weights = weights.get(&kind).unwrap_or(&no_weights);
            let weight = |channel: &str| kind_weights.get(channel).copied().unwrap_or(0.0);
            let by_id: HashMap<&str, &Conversion> =
                group.iter().map(|c| (c.id.as_str(), c)).collect();
            for (settings, output) in all.iter().zip(outputs.iter_mut()) {
                let credits = credit_entity(&t, &group, settings.model, settings.lookback, &weight);
                for credit in credits {
                    if let Some(conversion) = by_id.get(credit.conversion_id.as_str()) {
                        output.push(&kind, conversion, &credit)?;
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    outputs.into_iter().map(Rows::finish).collect()
}

/// Groups one entity's conversions by type (sorted, so the order is stable).
fn by_kind(conversions: Vec<Conversion>) -> Vec<(String, Vec<Conversion>)> {
    let mut groups: std::collections::BTreeMap<String, Vec<Conversion>> = Default::default();
    for conversion in conversions {
        groups
            .entry(conversion.kind.clone().unwrap_or_default())
            .or_default()
            .push(conversion);
    }
    groups.into_iter().collect()
}

/// Markov channel weights per conversion type. For a type, every entity contributes its
/// converting paths to that type and one non-converting path (its touches after its last
/// conversion of that type, or all of them if it never converted to it).
async fn markov_weights(
    ctx: &SessionContext,
    touches: &str,
    conversions: &str,
    columns: &Columns,
    lookback: Duration,
) -> Result<HashMap<String, HashMap<String, f64>>> {
    let kinds_frame = ctx
        .table(conversions)
        .await?
        .aggregate(vec![datafusion::prelude::col("conversion_type")], vec![])?;
    let mut kinds = Vec::new();
    for batch in kinds_frame.collect().await? {
        let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let strings = column.as_string::<i32>();
        kinds.extend(strings.iter().flatten().map(str::to_string));
    }
    kinds.sort();
    let mut counts: HashMap<String, HashMap<Vec<String>, (f64, f64)>> = HashMap::new();
    let mut touch_rows = touch_groups(input(ctx, touches).await?, columns).await?;
    let mut conversion_rows = conversion_groups(
        input(ctx, conversions).await?,
        columns,
        Some("conversion_type"),
    )
    .await?;
    for_each_entity(&mut touch_rows, &mut conversion_rows, |t, c| {
        let grouped = by_kind(c);
        for kind in &kinds {
            let own: &[Conversion] = grouped
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, group)| group.as_slice())
                .unwrap_or(&[]);
            let kind_counts = counts.entry(kind.clone()).or_default();
            for path in entity_paths(&t, own, lookback) {
                let entry = kind_counts.entry(path.channels).or_default();
                entry.0 += path.conversions;
                entry.1 += path.nulls;
            }
        }
        Ok(())
    })
    .await?;
    Ok(counts
        .into_iter()
        .map(|(kind, paths)| {
            let mut paths: Vec<PathCount> = paths
                .into_iter()
                .map(|(channels, (conversions, nulls))| PathCount {
                    channels,
                    conversions,
                    nulls,
                })
                .collect();
            paths.sort_by(|a, b| a.channels.cmp(&b.channels));
            (kind, channel_weights(paths).into_iter().collect())
        })
        .collect())
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
