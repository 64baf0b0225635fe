//! `kpi attribution` over files of any size: inputs sorted by entity (DataFusion's sort spills
//! to disk past its memory limit), then credited one entity at a time and written in batches,
//! so memory is bounded by the sort budget and the largest entity's history, not by the input.
//!
//! The Markov model needs channel weights from every path first, so with it the inputs are
//! read twice: once to count paths (one entry per distinct channel sequence), once to credit.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
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
use super::output::{Output, PerModel};
use super::{path, Conversion, Model, Touch};
use crate::error::{Error, Result};

/// Memory the sorts may use before spilling to disk.
const SORT_MEMORY: usize = 512 * 1024 * 1024;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Touches read (each pass counts once).
    pub touches: usize,
    /// Conversions read.
    pub conversions: usize,
    /// Credit rows written.
    pub rows: usize,
    /// Whether the inputs outgrew the memory budget and were sorted on disk.
    pub sorted_on_disk: bool,
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
    /// Bytes the inputs may take in memory (see [`super::memory`]); past it they are sorted
    /// on disk.
    pub memory_budget: usize,
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
    /// The file at `path` (CSV or Parquet).
    pub(super) async fn file(ctx: &SessionContext, path: &Path) -> Result<Self> {
        Ok(Self {
            origin: path.display().to_string(),
            frame: open_frame(ctx, path).await?,
            is_view: false,
        })
    }
}

/// An input column: `(name, key, alias, required)`: the name read, its `--columns` key, the
/// alias it gets, whether a missing one is an error (else it reads as null).
pub(super) type Wanted<'a> = (String, &'a str, &'a str, bool);

/// Streams an input's needed columns as text, sorted by entity.
async fn sorted(input: Input, columns: Vec<Wanted<'_>>) -> Result<SendableRecordBatchStream> {
    let frame = projected(input, columns)?.sort(vec![
        Expr::Column(Column::from_name("entity")).sort(true, true)
    ])?;
    Ok(frame.execute_stream().await?)
}

/// An input's needed columns under their aliases: strings and typed timestamps as they are,
/// any other type as text; a missing optional column as null text.
pub(super) fn projected(input: Input, columns: Vec<Wanted<'_>>) -> Result<DataFrame> {
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
            .is_ok_and(|field| matches!(field.data_type(), DataType::Timestamp(_, _)));
        if typed_time && alias == "ts" {
            // A typed timestamp is read as one, not printed and parsed: arrow keeps instants
            // as time since the epoch in UTC whatever the zone, and a naive one is read as UTC.
            select.push(Expr::Column(Column::from_name(name)).alias(alias));
        } else if available.contains(&name) {
            let is_text = input
                .frame
                .schema()
                .field_with_unqualified_name(&name)
                .is_ok_and(|field| {
                    matches!(
                        field.data_type(),
                        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                    )
                });
            select.push(if is_text {
                Expr::Column(Column::from_name(name)).alias(alias)
            } else {
                text(&name, alias)
            });
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
    Ok(input.frame.select(select)?)
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
/// Parses every row of a batch onto the end of a queue (the batch's columns are looked up
/// once, not once per row).
type RowParser<T> =
    Box<dyn Fn(&RecordBatch, &mut std::collections::VecDeque<T>) -> Result<()> + Send>;

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

    /// Reads the first rows (for a sorted input, the whole sort runs here): two inputs
    /// started together sort side by side.
    pub(crate) async fn start(&mut self) -> Result<()> {
        self.fill().await
    }

    async fn fill(&mut self) -> Result<()> {
        while self.buffered.is_empty() && !self.done {
            match self.stream.next().await {
                Some(batch) => {
                    let batch = batch?;
                    (self.parse)(&batch, &mut self.buffered)?;
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

/// A text column in any of arrow's string layouts.
#[derive(Clone, Copy)]
enum Text<'b> {
    Utf8(&'b arrow::array::StringArray),
    Large(&'b arrow::array::LargeStringArray),
    View(&'b arrow::array::StringViewArray),
}

impl<'b> Text<'b> {
    fn of(array: &'b ArrayRef) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8 => Some(Self::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Some(Self::Large(array.as_string::<i64>())),
            DataType::Utf8View => Some(Self::View(array.as_string_view())),
            _ => None,
        }
    }

    /// The value in `row`; `None` when it is null or empty.
    fn get(self, row: usize) -> Option<&'b str> {
        let value = match self {
            Self::Utf8(array) => (!array.is_null(row)).then(|| array.value(row)),
            Self::Large(array) => (!array.is_null(row)).then(|| array.value(row)),
            Self::View(array) => (!array.is_null(row)).then(|| array.value(row)),
        };
        value.filter(|v| !v.is_empty())
    }
}

/// A batch of a [`projected`] input (entity, id, timestamp, then the other columns), read row
/// by row with borrowed strings.
pub(super) struct Rows<'b> {
    origin: &'b str,
    kind: &'b str,
    ts_column: &'b str,
    ts: &'b ArrayRef,
    instants: Instants<'b>,
    texts: Vec<Option<Text<'b>>>,
}

impl<'b> Rows<'b> {
    /// Reads `batch` of an input called `origin` holding rows of `kind` (`touch`,
    /// `conversion`) whose timestamp column is called `ts_column`.
    pub(super) fn new(
        batch: &'b RecordBatch,
        origin: &'b str,
        kind: &'b str,
        ts_column: &'b str,
    ) -> Self {
        Self {
            origin,
            kind,
            ts_column,
            ts: batch.column(2),
            instants: Instants::of(batch.column(2)),
            texts: batch.columns().iter().map(Text::of).collect(),
        }
    }

    /// The text in `column` of `row`; `None` when null or empty.
    pub(super) fn text(&self, column: usize, row: usize) -> Option<&'b str> {
        self.texts[column].and_then(|text| text.get(row))
    }

    /// The three columns every input row has (entity, id, timestamp).
    pub(super) fn key(&self, row: usize) -> Result<(&'b str, &'b str, DateTime<Utc>)> {
        let (origin, kind) = (self.origin, self.kind);
        let Some(id) = self.text(1, row) else {
            return Err(missing(origin, &format!("a {kind}"), "id"));
        };
        let Some(entity) = self.text(0, row) else {
            return Err(missing(origin, &format!("{kind} `{id}`"), "entity"));
        };
        let ts = if self.ts.is_null(row) {
            None
        } else if let Some(instant) = self.instants.typed(row) {
            Some(instant?)
        } else {
            match self.text(2, row) {
                Some(text) => Some(instant(origin, id, self.ts_column, text)?),
                None => None,
            }
        };
        let Some(ts) = ts else {
            return Err(missing(origin, &format!("{kind} `{id}`"), "timestamp"));
        };
        Ok((entity, id, ts))
    }

    /// The error of `row` (called `id`) lacking `what`.
    pub(super) fn missing(&self, id: &str, what: &str) -> Error {
        missing(self.origin, &format!("{} `{id}`", self.kind), what)
    }

    /// The revenue in `column` of a conversion `id` in cents.
    pub(super) fn cents(
        &self,
        column: usize,
        row: usize,
        id: &str,
        name: &str,
    ) -> Result<Option<i64>> {
        match self.text(column, row) {
            None => Ok(None),
            Some(text) => Some(parse_cents(text).ok_or_else(|| Error::input("bad_revenue", format!(
                "{}: conversion `{id}`: `{name}` = `{text}` is not an amount; use a number such as 100.00",
                self.origin
            )))).transpose(),
        }
    }
}

/// A timestamp column: typed (read as instants) or text to parse. The calendar date of the
/// previous row is kept: landed rows come day by day, and finding a date from a day number is
/// the costly step of making an instant.
struct Instants<'b> {
    values: InstantValues<'b>,
    day: std::cell::Cell<Option<(i64, NaiveDate)>>,
}

#[derive(Clone, Copy)]
enum InstantValues<'b> {
    Text,
    Seconds(&'b arrow::array::TimestampSecondArray),
    Millis(&'b arrow::array::TimestampMillisecondArray),
    Micros(&'b arrow::array::TimestampMicrosecondArray),
    Nanos(&'b arrow::array::TimestampNanosecondArray),
}

impl<'b> Instants<'b> {
    fn of(column: &'b ArrayRef) -> Self {
        use arrow::datatypes::{
            TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
            TimestampSecondType,
        };
        let values = match column.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                InstantValues::Seconds(column.as_primitive::<TimestampSecondType>())
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                InstantValues::Millis(column.as_primitive::<TimestampMillisecondType>())
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                InstantValues::Micros(column.as_primitive::<TimestampMicrosecondType>())
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                InstantValues::Nanos(column.as_primitive::<TimestampNanosecondType>())
            }
            _ => InstantValues::Text,
        };
        Self {
            values,
            day: std::cell::Cell::new(None),
        }
    }

    /// The instant in `row` of a typed column (`None` for a text one); `Err` out of range.
    /// The same instant as chrono's `DateTime::from_timestamp*` (tested).
    fn typed(&self, row: usize) -> Option<Result<DateTime<Utc>>> {
        let (seconds, nanos) = match self.values {
            InstantValues::Text => return None,
            InstantValues::Seconds(array) => (array.value(row), 0),
            InstantValues::Millis(array) => split_instant(array.value(row), 1_000),
            InstantValues::Micros(array) => split_instant(array.value(row), 1_000_000),
            InstantValues::Nanos(array) => split_instant(array.value(row), 1_000_000_000),
        };
        Some(
            self.at(seconds, nanos)
                .ok_or_else(|| Error::input("bad_timestamp", "a timestamp is out of range")),
        )
    }

    /// `seconds` since the epoch plus `nanos`, the date found once per day in a row.
    fn at(&self, seconds: i64, nanos: u32) -> Option<DateTime<Utc>> {
        let (day, second) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let date = match self.day.get() {
            Some((known, date)) if known == day => date,
            _ => {
                // 719,163 days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
                let date = NaiveDate::from_num_days_from_ce_opt(
                    i32::try_from(day.checked_add(719_163)?).ok()?,
                )?;
                self.day.set(Some((day, date)));
                date
            }
        };
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(second as u32, nanos)?;
        Some(date.and_time(time).and_utc())
    }
}

/// A count of `per_second` units since the epoch as whole seconds and nanoseconds.
fn split_instant(value: i64, per_second: i64) -> (i64, u32) {
    let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
    (value.div_euclid(per_second), nanos as u32)
}

/// The error of a row without a value it needs.
fn missing(origin: &str, row: &str, what: &str) -> Error {
    Error::input("missing_value", format!("{origin}: {row} has no {what}"))
}

/// The columns read of touches: entity, id, ts, channel, campaign.
pub(super) fn touch_columns(columns: &Columns) -> Vec<Wanted<'static>> {
    let column = |key: &'static str, alias: &'static str, required: bool| {
        (columns.get(key).to_string(), key, alias, required)
    };
    vec![
        column("touch_entity", "entity", true),
        column("touch_id", "id", true),
        column("touch_ts", "ts", true),
        column("channel", "channel", true),
        column("campaign", "campaign", false),
    ]
}

/// The columns read of conversions: entity, id, ts, revenue, and the conversion type when
/// `kind_column` names one.
pub(super) fn conversion_columns(
    columns: &Columns,
    kind_column: Option<&str>,
) -> Vec<Wanted<'static>> {
    let column = |key: &'static str, alias: &'static str, required: bool| {
        (columns.get(key).to_string(), key, alias, required)
    };
    let mut wanted = vec![
        column("conversion_entity", "entity", true),
        column("conversion_id", "id", true),
        column("conversion_ts", "ts", true),
        column("revenue", "revenue", false),
    ];
    if let Some(kind) = kind_column {
        wanted.push((kind.to_string(), "conversion_type", "kind", true));
    }
    wanted
}

/// Touches of `input`, entity by entity.
pub(crate) async fn touch_groups(input: Input, columns: &Columns) -> Result<Groups<Touch>> {
    let origin = input.origin.clone();
    let stream = sorted(input, touch_columns(columns)).await?;
    let ts_column = columns.get("touch_ts").to_string();
    let parse = move |batch: &RecordBatch, out: &mut std::collections::VecDeque<Touch>| {
        let rows = Rows::new(batch, &origin, "touch", &ts_column);
        for row in 0..batch.num_rows() {
            let (entity, id, ts) = rows.key(row)?;
            let Some(channel) = rows.text(3, row) else {
                return Err(rows.missing(id, "channel"));
            };
            out.push_back(Touch {
                id: id.to_string(),
                entity: entity.to_string(),
                ts,
                channel: channel.to_string(),
                campaign: rows.text(4, row).map(str::to_string),
            });
        }
        Ok(())
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
    let stream = sorted(input, conversion_columns(columns, kind_column)).await?;
    let ts_column = columns.get("conversion_ts").to_string();
    let revenue_column = columns.get("revenue").to_string();
    let has_kind = kind_column.is_some();
    let parse = move |batch: &RecordBatch, out: &mut std::collections::VecDeque<Conversion>| {
        let rows = Rows::new(batch, &origin, "conversion", &ts_column);
        for row in 0..batch.num_rows() {
            let (entity, id, ts) = rows.key(row)?;
            let revenue_cents = rows.cents(3, row, id, &revenue_column)?;
            let kind = if has_kind {
                match rows.text(4, row) {
                    Some(kind) => Some(kind.to_string()),
                    None => return Err(rows.missing(id, "conversion_type")),
                }
            } else {
                None
            };
            out.push_back(Conversion {
                id: id.to_string(),
                entity: entity.to_string(),
                ts,
                revenue_cents,
                kind,
            });
        }
        Ok(())
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
    if let Some(summary) = super::memory::run(&ctx, job).await? {
        return Ok(summary);
    }
    run_sorted(&ctx, job).await
}

/// Runs the job over inputs sorted by entity (on disk past [`SORT_MEMORY`]).
async fn run_sorted(ctx: &SessionContext, job: &Job<'_>) -> Result<Summary> {
    let mut weights: HashMap<String, f64> = HashMap::new();
    if job.models.contains(&Model::Markov) {
        let mut touches = touch_groups(Input::file(ctx, job.touches).await?, job.columns).await?;
        let mut conversions =
            conversion_groups(Input::file(ctx, job.conversions).await?, job.columns, None).await?;
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
    let mut touches = touch_groups(Input::file(ctx, job.touches).await?, job.columns).await?;
    let mut conversions =
        conversion_groups(Input::file(ctx, job.conversions).await?, job.columns, None).await?;
    let result = for_each_entity(&mut touches, &mut conversions, |t, c| {
        push_entity(&mut output, &t, &c, job.models, job.lookback, &weight)
    })
    .await;
    match result.and_then(|()| output.finish()) {
        Ok(rows) => Ok(Summary {
            touches: touches.read,
            conversions: conversions.read,
            rows,
            sorted_on_disk: true,
        }),
        Err(error) => Err(error),
    }
}

/// Credits an entity's conversions under every model and appends the rows: each
/// conversion's path is found once, and its ids, channels and campaigns are written once
/// with one credit pair per model (the same credits [`super::credit_entity`] gives per model).
fn push_entity(
    output: &mut Output,
    touches: &[Touch],
    conversions: &[Conversion],
    models: &[Model],
    lookback: Duration,
    weight: &dyn Fn(&str) -> f64,
) -> Result<()> {
    let rows = output.rows();
    let mut per_model = PerModel::default();
    for conversion in conversions {
        let path = path(touches, conversion, lookback);
        if path.is_empty() {
            rows.push_unattributed(&conversion.id, conversion.revenue_cents);
            continue;
        }
        per_model.fill(
            models,
            |model, fractions| *fractions = super::fractions(&path, conversion.ts, model, weight),
            conversion.revenue_cents,
        );
        for (position, touch) in path.iter().enumerate() {
            rows.push_touch(
                &conversion.id,
                position,
                (&touch.id, &touch.channel, touch.campaign.as_deref()),
                &per_model,
            );
        }
    }
    output.end_entity()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray,
    };
    use chrono::DateTime;

    use super::Instants;

    /// Instants read with the kept day equal chrono's own conversions, across day
    /// boundaries, before the epoch and at the ends of the range (out of range: `None`).
    #[test]
    fn instants_with_a_kept_day_equal_chronos() {
        let mut values = vec![
            0,
            -1,
            1,
            86_399,
            86_400,
            -86_400,
            -86_401,
            1_764_000_000,
            1_764_000_001,
            1_764_086_399,
            -62_135_596_800,
            -62_135_596_801,
            253_402_300_799,
            253_402_300_800,
            i64::MAX,
            i64::MIN,
            i64::MAX / 1_000,
            i64::MIN / 1_000,
        ];
        // The same instants in order and out of order, so the kept day is hit and missed.
        values.extend(values.clone().into_iter().rev());
        let seconds: ArrayRef = Arc::new(TimestampSecondArray::from(values.clone()));
        let scaled = |factor: i64| -> Vec<i64> {
            values
                .iter()
                .map(|v| v.saturating_mul(factor).wrapping_add(factor / 3))
                .collect()
        };
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(scaled(1_000)));
        let micros: ArrayRef = Arc::new(TimestampMicrosecondArray::from(scaled(1_000_000)));
        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(scaled(1_000_000_000)));
        type Chrono<'a> = &'a dyn Fn(i64) -> Option<DateTime<chrono::Utc>>;
        let check = |column: &ArrayRef, raw: &[i64], chrono: Chrono| {
            let instants = Instants::of(column);
            for (row, value) in raw.iter().enumerate() {
                let ours = instants.typed(row).expect("typed").ok();
                assert_eq!(ours, chrono(*value), "{} {value}", column.data_type());
            }
        };
        check(&seconds, &values, &|v| DateTime::from_timestamp(v, 0));
        check(&millis, &scaled(1_000), &DateTime::from_timestamp_millis);
        check(
            &micros,
            &scaled(1_000_000),
            &DateTime::from_timestamp_micros,
        );
        check(&nanos, &scaled(1_000_000_000), &|v| {
            Some(DateTime::from_timestamp_nanos(v))
        });
    }
}
