//! `kpi attribution` over files of any size: inputs sorted by entity (DataFusion's sort spills
//! to disk past its memory limit), then credited one entity at a time and written in batches,
//! so memory is bounded by the sort budget and the largest entity's history, not by the input.
//!
//! The Markov model needs channel weights from every path first, so with it the inputs are
//! read twice: once to count paths (one entry per distinct channel sequence), once to credit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Builder, Float64Builder, StringBuilder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{cast, lit, Expr};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;

use super::io::{open_frame, parse_cents, Columns};
use super::markov::{count_path, entity_paths, weights_of, PathCounts};
use super::{allocate_cents, fractions, path, Conversion, Model, Touch, UNATTRIBUTED};
use crate::error::{Error, Result};

/// Memory the sorts may use before spilling to disk.
const SORT_MEMORY: usize = 512 * 1024 * 1024;
/// Rows per written batch.
const BATCH_ROWS: usize = 65_536;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Touches read (each pass counts once).
    pub touches: usize,
    /// Conversions read.
    pub conversions: usize,
    /// Credit rows written.
    pub rows: usize,
}

/// Inputs and options of one run.
pub struct Job<'a> {
    /// Touches file.
    pub touches: &'a Path,
    /// Conversions file.
    pub conversions: &'a Path,
    /// Column names.
    pub columns: &'a Columns,
    /// Models, one credit column pair each.
    pub models: &'a [Model],
    /// Lookback window.
    pub lookback: Duration,
    /// Output file (.csv or .parquet).
    pub out: &'a Path,
}

fn context() -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(SORT_MEMORY)))
        .with_disk_manager_builder(DiskManagerBuilder::default())
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(
        SessionConfig::new(),
        runtime,
    ))
}

fn text(name: &str, alias: &str) -> Expr {
    cast(Expr::Column(Column::from_name(name)), DataType::Utf8).alias(alias)
}

/// An input of a run: a file of `kpi attribution` or a view read by the SQL table.
pub(crate) struct Input {
    /// What error messages call it (`touches.csv`, `view reporting.touches`).
    pub origin: String,
    /// Its rows.
    pub frame: DataFrame,
    /// Whether it is a view (a missing column is fixed in SQL, not with `--columns`).
    pub is_view: bool,
}

impl Input {
    async fn file(ctx: &SessionContext, path: &Path) -> Result<Self> {
        Ok(Self {
            origin: path.display().to_string(),
            frame: open_frame(ctx, path).await?,
            is_view: false,
        })
    }
}

/// Streams an input's needed columns as text, sorted by entity. Each column is
/// `(name, key, alias, required)`: the name read, its `--columns` key, the alias it gets.
async fn sorted(
    input: Input,
    columns: Vec<(String, &str, &str, bool)>,
) -> Result<SendableRecordBatchStream> {
    let available: Vec<String> = input
        .frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut select = Vec::new();
    for (name, key, alias, required) in columns {
        let typed_time = input
            .frame
            .schema()
            .field_with_unqualified_name(&name)
            .ok()
            .and_then(|field| match field.data_type() {
                DataType::Timestamp(unit, _) => Some(*unit),
                _ => None,
            });
        if let (Some(unit), "ts") = (typed_time, alias) {
            // A typed timestamp is read as one (an instant in UTC), not printed and parsed.
            select.push(
                cast(
                    Expr::Column(Column::from_name(name)),
                    DataType::Timestamp(unit, Some("UTC".into())),
                )
                .alias(alias),
            );
        } else if available.contains(&name) {
            select.push(text(&name, alias));
        } else if required {
            let fix = if input.is_view {
                format!("alias a column AS {name} in the view's SQL")
            } else {
                format!("map another column with --columns {key}=COLUMN")
            };
            return Err(Error::input(
                "missing_column",
                format!(
                    "{}: no column `{name}` (columns: {}); {fix}",
                    input.origin,
                    available.join(", ")
                ),
            ));
        } else {
            select.push(
                cast(
                    lit(datafusion::common::ScalarValue::Utf8(None)),
                    DataType::Utf8,
                )
                .alias(alias),
            );
        }
    }
    let frame =
        input.frame.select(select)?.sort(vec![
            Expr::Column(Column::from_name("entity")).sort(true, true)
        ])?;
    Ok(frame.execute_stream().await?)
}

fn instant(origin: &str, id: &str, column: &str, text: &str) -> Result<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Ok(naive.and_utc());
        }
    }
    Err(Error::input("bad_timestamp", format!(
        "{origin}: row `{id}`: `{column}` = `{text}` is not a timestamp; use RFC 3339 such as 2024-01-15T12:00:00Z or with an offset"
    )))
}

/// Turns one row of a batch into a row.
type RowParser<T> = Box<dyn Fn(&RecordBatch, usize) -> Result<T> + Send>;

/// A row that belongs to an entity.
pub(crate) trait OfEntity {
    /// The entity's id.
    fn entity(&self) -> &str;
}

impl OfEntity for Touch {
    fn entity(&self) -> &str {
        &self.entity
    }
}

impl OfEntity for Conversion {
    fn entity(&self) -> &str {
        &self.entity
    }
}

/// Reads rows of one kind from a sorted stream, entity by entity.
pub(crate) struct Groups<T> {
    stream: SendableRecordBatchStream,
    buffered: std::collections::VecDeque<T>,
    done: bool,
    parse: RowParser<T>,
    /// Rows read so far.
    pub read: usize,
}

impl<T: OfEntity> Groups<T> {
    fn new(stream: SendableRecordBatchStream, parse: RowParser<T>) -> Self {
        Self {
            stream,
            buffered: Default::default(),
            done: false,
            parse,
            read: 0,
        }
    }

    async fn fill(&mut self) -> Result<()> {
        while self.buffered.is_empty() && !self.done {
            match self.stream.next().await {
                Some(batch) => {
                    let batch = batch?;
                    for row in 0..batch.num_rows() {
                        self.buffered.push_back((self.parse)(&batch, row)?);
                    }
                    self.read += batch.num_rows();
                }
                None => self.done = true,
            }
        }
        Ok(())
    }

    async fn peek_entity(&mut self) -> Result<Option<String>> {
        self.fill().await?;
        Ok(self.buffered.front().map(|row| row.entity().to_string()))
    }

    /// Takes every row of `entity` (rows are sorted, so they are contiguous).
    async fn take(&mut self, entity: &str) -> Result<Vec<T>> {
        let mut rows = Vec::new();
        loop {
            self.fill().await?;
            match self.buffered.front() {
                Some(next) if next.entity() == entity => {
                    if let Some(row) = self.buffered.pop_front() {
                        rows.push(row);
                    }
                }
                _ => return Ok(rows),
            }
        }
    }
}

/// Returns a value that must be there, or says which row lacks it.
fn present(origin: &str, row: &str, what: &str, value: Option<String>) -> Result<String> {
    value.ok_or_else(|| missing(origin, row, what))
}

/// Reads the three columns every input row has (entity, id, timestamp) from the sorted stream.
fn entity_id_ts(
    origin: &str,
    kind: &str,
    ts_column: &str,
    batch: &RecordBatch,
    row: usize,
) -> Result<(String, String, DateTime<Utc>)> {
    let Some(id) = cell(batch, 1, row) else {
        return Err(missing(origin, &format!("a {kind}"), "id"));
    };
    let Some(entity) = cell(batch, 0, row) else {
        return Err(missing(origin, &format!("{kind} `{id}`"), "entity"));
    };
    let column = batch.column(2);
    let ts = if column.is_null(row) {
        None
    } else if let DataType::Timestamp(_, _) = column.data_type() {
        Some(typed_instant(column, row)?)
    } else {
        match cell(batch, 2, row) {
            Some(text) => Some(instant(origin, &id, ts_column, &text)?),
            None => None,
        }
    };
    let Some(ts) = ts else {
        return Err(missing(origin, &format!("{kind} `{id}`"), "timestamp"));
    };
    Ok((entity, id, ts))
}

/// The instant in row `row` of a timestamp column (cast to UTC by [`sorted`]).
fn typed_instant(column: &ArrayRef, row: usize) -> Result<DateTime<Utc>> {
    use arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    let DataType::Timestamp(unit, _) = column.data_type() else {
        return Err(Error::internal("not a timestamp column"));
    };
    let instant = match unit {
        TimeUnit::Second => {
            DateTime::from_timestamp(column.as_primitive::<TimestampSecondType>().value(row), 0)
        }
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(
            column.as_primitive::<TimestampMillisecondType>().value(row),
        ),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(
            column.as_primitive::<TimestampMicrosecondType>().value(row),
        ),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(
            column.as_primitive::<TimestampNanosecondType>().value(row),
        )),
    };
    instant.ok_or_else(|| Error::input("bad_timestamp", "a timestamp is out of range"))
}

/// The error of a row without a value it needs.
fn missing(origin: &str, row: &str, what: &str) -> Error {
    Error::input("missing_value", format!("{origin}: {row} has no {what}"))
}

fn cell(batch: &RecordBatch, column: usize, row: usize) -> Option<String> {
    let array = batch.column(column).as_string::<i32>();
    (!array.is_null(row))
        .then(|| array.value(row).to_string())
        .filter(|v| !v.is_empty())
}

/// Touches of `input`, entity by entity.
pub(crate) async fn touch_groups(input: Input, columns: &Columns) -> Result<Groups<Touch>> {
    let origin = input.origin.clone();
    let names = vec![
        (
            columns.get("touch_entity").to_string(),
            "touch_entity",
            "entity",
            true,
        ),
        (columns.get("touch_id").to_string(), "touch_id", "id", true),
        (columns.get("touch_ts").to_string(), "touch_ts", "ts", true),
        (
            columns.get("channel").to_string(),
            "channel",
            "channel",
            true,
        ),
        (
            columns.get("campaign").to_string(),
            "campaign",
            "campaign",
            false,
        ),
    ];
    let stream = sorted(input, names).await?;
    let ts_column = columns.get("touch_ts").to_string();
    let parse = move |batch: &RecordBatch, row: usize| -> Result<Touch> {
        let (entity, id, ts) = entity_id_ts(&origin, "touch", &ts_column, batch, row)?;
        let Some(channel) = cell(batch, 3, row) else {
            return Err(missing(&origin, &format!("touch `{id}`"), "channel"));
        };
        Ok(Touch {
            id,
            entity,
            ts,
            channel,
            campaign: cell(batch, 4, row),
        })
    };
    Ok(Groups::new(stream, Box::new(parse)))
}

/// Conversions of `input`, entity by entity; `kind_column` names the conversion-type column
/// when there is one (the SQL table has; `kpi attribution` files need not).
pub(crate) async fn conversion_groups(
    input: Input,
    columns: &Columns,
    kind_column: Option<&str>,
) -> Result<Groups<Conversion>> {
    let origin = input.origin.clone();
    let mut names = vec![
        (
            columns.get("conversion_entity").to_string(),
            "conversion_entity",
            "entity",
            true,
        ),
        (
            columns.get("conversion_id").to_string(),
            "conversion_id",
            "id",
            true,
        ),
        (
            columns.get("conversion_ts").to_string(),
            "conversion_ts",
            "ts",
            true,
        ),
        (
            columns.get("revenue").to_string(),
            "revenue",
            "revenue",
            false,
        ),
    ];
    if let Some(kind) = kind_column {
        names.push((kind.to_string(), "conversion_type", "kind", true));
    }
    let stream = sorted(input, names).await?;
    let ts_column = columns.get("conversion_ts").to_string();
    let revenue_column = columns.get("revenue").to_string();
    let has_kind = kind_column.is_some();
    let parse = move |batch: &RecordBatch, row: usize| -> Result<Conversion> {
        let (entity, id, ts) = entity_id_ts(&origin, "conversion", &ts_column, batch, row)?;
        let revenue_cents = match cell(batch, 3, row) {
            None => None,
            Some(text) => Some(parse_cents(&text).ok_or_else(|| Error::input("bad_revenue", format!(
                "{origin}: conversion `{id}`: `{revenue_column}` = `{text}` is not an amount; use a number such as 100.00"
            )))?),
        };
        let kind = if has_kind {
            Some(present(
                &origin,
                &format!("conversion `{id}`"),
                "conversion_type",
                cell(batch, 4, row),
            )?)
        } else {
            None
        };
        Ok(Conversion {
            id,
            entity,
            ts,
            revenue_cents,
            kind,
        })
    };
    Ok(Groups::new(stream, Box::new(parse)))
}

/// Walks both inputs entity by entity, calling `visit` with each entity's sorted rows.
pub(crate) async fn for_each_entity(
    touches: &mut Groups<Touch>,
    conversions: &mut Groups<Conversion>,
    mut visit: impl FnMut(Vec<Touch>, Vec<Conversion>) -> Result<()>,
) -> Result<()> {
    loop {
        let next = match (
            touches.peek_entity().await?,
            conversions.peek_entity().await?,
        ) {
            (None, None) => return Ok(()),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (Some(a), Some(b)) => a.min(b),
        };
        let mut own_touches = touches.take(&next).await?;
        let mut own_conversions = conversions.take(&next).await?;
        own_touches.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        own_conversions.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        visit(own_touches, own_conversions)?;
    }
}

/// Runs the job: returns what was read and written.
pub async fn run(job: &Job<'_>) -> Result<Summary> {
    let ctx = context()?;
    let mut weights: HashMap<String, f64> = HashMap::new();
    if job.models.contains(&Model::Markov) {
        let mut touches = touch_groups(Input::file(&ctx, job.touches).await?, job.columns).await?;
        let mut conversions =
            conversion_groups(Input::file(&ctx, job.conversions).await?, job.columns, None).await?;
        let mut counts = PathCounts::new();
        for_each_entity(&mut touches, &mut conversions, |t, c| {
            for path in entity_paths(&t, &c, job.lookback) {
                count_path(&mut counts, path, 1.0);
            }
            Ok(())
        })
        .await?;
        weights = weights_of(counts).into_iter().collect();
    }
    let weight = |channel: &str| weights.get(channel).copied().unwrap_or(0.0);

    let mut output = Output::create(job.out, job.models)?;
    let mut touches = touch_groups(Input::file(&ctx, job.touches).await?, job.columns).await?;
    let mut conversions =
        conversion_groups(Input::file(&ctx, job.conversions).await?, job.columns, None).await?;
    let result = for_each_entity(&mut touches, &mut conversions, |t, c| {
        output.push_entity(&t, &c, job.models, job.lookback, &weight)
    })
    .await;
    match result.and_then(|()| output.finish()) {
        Ok(rows) => Ok(Summary {
            touches: touches.read,
            conversions: conversions.read,
            rows,
        }),
        Err(error) => Err(error),
    }
}

/// The output file, written batch by batch under a temporary name and renamed at the end.
struct Output {
    path: PathBuf,
    temporary: PathBuf,
    schema: SchemaRef,
    writer: Option<Writer>,
    builders: Builders,
    rows: usize,
    models: usize,
}

enum Writer {
    Csv(arrow::csv::Writer<std::fs::File>),
    Parquet(parquet::arrow::ArrowWriter<std::fs::File>),
}

struct Builders {
    conversion: StringBuilder,
    touch: StringBuilder,
    position: UInt32Builder,
    channel: StringBuilder,
    campaign: StringBuilder,
    credit: Vec<Float64Builder>,
    revenue: Vec<Decimal128Builder>,
    len: usize,
}

impl Builders {
    fn new(models: usize) -> Self {
        Self {
            conversion: StringBuilder::new(),
            touch: StringBuilder::new(),
            position: UInt32Builder::new(),
            channel: StringBuilder::new(),
            campaign: StringBuilder::new(),
            credit: (0..models).map(|_| Float64Builder::new()).collect(),
            revenue: (0..models)
                .map(|_| Decimal128Builder::new().with_data_type(DataType::Decimal128(18, 2)))
                .collect(),
            len: 0,
        }
    }
}

impl Output {
    fn create(path: &Path, models: &[Model]) -> Result<Self> {
        let single = models.len() == 1;
        let mut fields = vec![
            Field::new("conversion_id", DataType::Utf8, false),
            Field::new("touch_id", DataType::Utf8, true),
            Field::new("position", DataType::UInt32, true),
            Field::new("channel", DataType::Utf8, false),
            Field::new("campaign", DataType::Utf8, true),
        ];
        for model in models {
            let (credit, revenue) = if single {
                ("credit".to_string(), "revenue_credit".to_string())
            } else {
                (
                    format!("credit_{}", model.name()),
                    format!("revenue_credit_{}", model.name()),
                )
            };
            fields.push(Field::new(credit, DataType::Float64, false));
            fields.push(Field::new(revenue, DataType::Decimal128(18, 2), true));
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let temporary = folder.join(format!(".{name}.tmp-{}", std::process::id()));
        let file = std::fs::File::create(&temporary).map_err(|e| {
            Error::unavailable(
                "write_failed",
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        let writer = match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => Writer::Parquet(parquet::arrow::ArrowWriter::try_new(
                file,
                Arc::clone(&schema),
                None,
            )?),
            _ => Writer::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file),
            ),
        };
        Ok(Self {
            path: path.to_path_buf(),
            temporary,
            schema,
            writer: Some(writer),
            builders: Builders::new(models.len()),
            rows: 0,
            models: models.len(),
        })
    }

    /// Credits an entity's conversions under every model and appends the rows: each
    /// conversion's path is found once, and its ids, channels and campaigns are written once
    /// with one credit pair per model (the same credits [`super::credit_entity`] gives per model).
    fn push_entity(
        &mut self,
        touches: &[Touch],
        conversions: &[Conversion],
        models: &[Model],
        lookback: Duration,
        weight: &dyn Fn(&str) -> f64,
    ) -> Result<()> {
        let b = &mut self.builders;
        for conversion in conversions {
            let path = path(touches, conversion, lookback);
            if path.is_empty() {
                b.conversion.append_value(&conversion.id);
                b.touch.append_null();
                b.position.append_null();
                b.channel.append_value(UNATTRIBUTED);
                b.campaign.append_null();
                for model in 0..models.len() {
                    b.credit[model].append_value(1.0);
                    b.revenue[model].append_option(conversion.revenue_cents.map(i128::from));
                }
                b.len += 1;
                continue;
            }
            let per_model: Vec<(Vec<f64>, Option<Vec<i64>>)> = models
                .iter()
                .map(|model| {
                    let fractions = fractions(&path, conversion.ts, *model, weight);
                    let revenue = conversion
                        .revenue_cents
                        .map(|cents| allocate_cents(cents, &fractions));
                    (fractions, revenue)
                })
                .collect();
            for (position, touch) in path.iter().enumerate() {
                b.conversion.append_value(&conversion.id);
                b.touch.append_value(&touch.id);
                b.position.append_value(position as u32);
                b.channel.append_value(&touch.channel);
                b.campaign.append_option(touch.campaign.as_deref());
                for (model, (fractions, revenue)) in per_model.iter().enumerate() {
                    b.credit[model].append_value(fractions[position]);
                    b.revenue[model]
                        .append_option(revenue.as_ref().map(|parts| i128::from(parts[position])));
                }
                b.len += 1;
            }
        }
        if b.len >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.builders.len == 0 {
            return Ok(());
        }
        let mut b = std::mem::replace(&mut self.builders, Builders::new(self.models));
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(b.conversion.finish()),
            Arc::new(b.touch.finish()),
            Arc::new(b.position.finish()),
            Arc::new(b.channel.finish()),
            Arc::new(b.campaign.finish()),
        ];
        for (credit, revenue) in b.credit.iter_mut().zip(b.revenue.iter_mut()) {
            arrays.push(Arc::new(credit.finish()));
            arrays.push(Arc::new(revenue.finish()));
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)?;
        self.rows += batch.num_rows();
        match &mut self.writer {
            Some(Writer::Csv(writer)) => {
                writer.write(&crate::render::csv::neutralise_batch(&batch))?
            }
            Some(Writer::Parquet(writer)) => writer.write(&batch)?,
            None => return Err(Error::internal("output already closed")),
        }
        Ok(())
    }

    fn finish(mut self) -> Result<usize> {
        let result = (|| -> Result<()> {
            self.flush()?;
            match self.writer.take() {
                Some(Writer::Csv(writer)) => drop(writer),
                Some(Writer::Parquet(writer)) => {
                    writer.close()?;
                }
                None => {}
            }
            std::fs::rename(&self.temporary, &self.path)?;
            Ok(())
        })();
        if let Err(error) = result {
            let _ = std::fs::remove_file(&self.temporary);
            return Err(Error::unavailable(
                "write_failed",
                format!("cannot write {}: {error}", self.path.display()),
            ));
        }
        Ok(self.rows)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // A run that failed half-way leaves no half-written file behind.
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}
