//! The credits file of `kpi attribution`: rows built into batches (on any thread), encoded and
//! written by a thread of its own under a temporary name, renamed when complete, so a failed
//! run leaves no half-written file.
//!
//! Parquet columns are encoded in parallel ([`ParallelParquet`]), Snappy-compressed, with
//! dictionaries only for the few values of positions, channels and campaigns: ids and credits
//! are nearly all distinct (a conversion id repeats only over its own path), and building a
//! dictionary for them costs time for nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::array::{
    ArrayRef, Decimal128Array, Decimal64Array, Float64Array, StringBuilder, UInt32Builder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn,
    ArrowRowGroupWriterFactory,
};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::{allocate_cents_into, Model, Scratch, UNATTRIBUTED};
use crate::error::{Error, Result};

/// Rows per written batch.
pub(super) const BATCH_ROWS: usize = 65_536;

/// Batches waiting for the writing thread (bounds the memory of finished, unwritten rows).
const QUEUED_BATCHES: usize = 4;

/// Each model's fractions of one path with the revenue split in cents; its buffers are kept
/// from one conversion to the next.
#[derive(Default)]
pub(super) struct PerModel {
    fractions: Vec<Vec<f64>>,
    cents: Vec<Vec<i64>>,
    has_revenue: bool,
    scratch: Scratch,
}

impl PerModel {
    /// Fills in each model's fractions (from `fractions_into`) and revenue split.
    pub(super) fn fill(
        &mut self,
        models: &[Model],
        fractions_into: impl Fn(Model, &mut Vec<f64>),
        revenue_cents: Option<i64>,
    ) {
        self.fractions.resize_with(models.len(), Vec::new);
        self.cents.resize_with(models.len(), Vec::new);
        self.has_revenue = revenue_cents.is_some();
        for ((model, fractions), cents) in
            models.iter().zip(&mut self.fractions).zip(&mut self.cents)
        {
            fractions_into(*model, fractions);
            if let Some(revenue) = revenue_cents {
                allocate_cents_into(revenue, fractions, cents, &mut self.scratch);
            }
        }
    }
}

/// Credit rows being built: one per (conversion, touch on its path), or the conversion's
/// `(unattributed)` row, with a credit and revenue pair per model.
pub(super) struct CreditRows {
    schema: SchemaRef,
    conversion: StringBuilder,
    touch: StringBuilder,
    position: UInt32Builder,
    channel: StringBuilder,
    campaign: StringBuilder,
    /// Per model: credits, and revenue credits in cents with whether each is there (plain
    /// vectors: 14 values a row with every model, where builders cost twice the time).
    credit: Vec<Vec<f64>>,
    revenue: Vec<Vec<i64>>,
    revenue_valid: Vec<bool>,
    len: usize,
}

impl CreditRows {
    fn new(schema: SchemaRef, models: usize) -> Self {
        Self {
            schema,
            conversion: StringBuilder::new(),
            touch: StringBuilder::new(),
            position: UInt32Builder::new(),
            channel: StringBuilder::new(),
            campaign: StringBuilder::new(),
            credit: vec![Vec::new(); models],
            revenue: vec![Vec::new(); models],
            revenue_valid: Vec::new(),
            len: 0,
        }
    }

    /// Rows built and not yet taken.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends the `(unattributed)` row of a conversion without touches.
    pub(super) fn push_unattributed(&mut self, conversion_id: &str, revenue_cents: Option<i64>) {
        self.conversion.append_value(conversion_id);
        self.touch.append_null();
        self.position.append_null();
        self.channel.append_value(UNATTRIBUTED);
        self.campaign.append_null();
        for (credit, revenue) in self.credit.iter_mut().zip(&mut self.revenue) {
            credit.push(1.0);
            revenue.push(revenue_cents.unwrap_or(0));
        }
        self.revenue_valid.push(revenue_cents.is_some());
        self.len += 1;
    }

    /// Appends the row of the touch `(id, channel, campaign)` at `position` of a conversion's
    /// path, with its credits from a filled [`PerModel`].
    pub(super) fn push_touch(
        &mut self,
        conversion_id: &str,
        position: usize,
        (touch_id, channel, campaign): (&str, &str, Option<&str>),
        per_model: &PerModel,
    ) {
        self.conversion.append_value(conversion_id);
        self.touch.append_value(touch_id);
        self.position.append_value(position as u32);
        self.channel.append_value(channel);
        self.campaign.append_option(campaign);
        let models = self.credit.iter_mut().zip(&mut self.revenue);
        for ((credit, revenue), (fractions, cents)) in
            models.zip(per_model.fractions.iter().zip(&per_model.cents))
        {
            credit.push(fractions[position]);
            revenue.push(if per_model.has_revenue {
                cents[position]
            } else {
                0
            });
        }
        self.revenue_valid.push(per_model.has_revenue);
        self.len += 1;
    }

    /// The rows built so far as a batch; the builders start over.
    pub(super) fn take(&mut self) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.conversion.finish()),
            Arc::new(self.touch.finish()),
            Arc::new(self.position.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.campaign.finish()),
        ];
        // The next batch is likely as long as this one.
        let len = self.len;
        let valid = NullBuffer::from(std::mem::replace(
            &mut self.revenue_valid,
            Vec::with_capacity(len),
        ));
        let valid = (valid.null_count() > 0).then_some(valid);
        // Revenue credits in the schema's decimal type: Decimal64 for Parquet (see
        // [`Output::create`]), Decimal128 for CSV.
        let narrow = self
            .schema
            .fields()
            .iter()
            .any(|field| matches!(field.data_type(), DataType::Decimal64(_, _)));
        for (credit, revenue) in self.credit.iter_mut().zip(&mut self.revenue) {
            let credit = std::mem::replace(credit, Vec::with_capacity(len));
            let revenue = std::mem::replace(revenue, Vec::with_capacity(len));
            arrays.push(Arc::new(Float64Array::from(credit)));
            arrays.push(if narrow {
                Arc::new(
                    Decimal64Array::new(revenue.into(), valid.clone())
                        .with_precision_and_scale(18, 2)?,
                )
            } else {
                Arc::new(
                    Decimal128Array::from_iter_values_with_nulls(
                        revenue.into_iter().map(i128::from),
                        valid.clone(),
                    )
                    .with_precision_and_scale(18, 2)?,
                )
            });
        }
        self.len = 0;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), arrays)?)
    }
}

enum Writer {
    Csv(Box<arrow::csv::Writer<std::io::BufWriter<std::fs::File>>>),
    Parquet(Box<ParallelParquet>),
}

impl Writer {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Self::Csv(writer) => writer.write(&crate::render::csv::neutralise_batch(batch))?,
            Self::Parquet(writer) => writer.write(batch)?,
        }
        Ok(())
    }

    fn close(self) -> Result<()> {
        match self {
            Self::Csv(writer) => writer.into_inner().flush()?,
            Self::Parquet(writer) => writer.close()?,
        }
        Ok(())
    }
}

/// Rows per Parquet row group (the arrow writer's default).
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// A Parquet file whose columns are encoded on every core: each row group's column writers are
/// shared out over one thread per core (arrow-rs's parallel column encoding), and the encoded
/// chunks appended in column order when the row group is full. Encoding is most of writing
/// (compression, statistics, dictionaries): on one thread it was a quarter of a run's CPU
/// time, all on one core.
struct ParallelParquet {
    file: SerializedFileWriter<std::fs::File>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    group: Option<RowGroup>,
    groups: usize,
}

/// The row group being encoded.
struct RowGroup {
    lanes: Vec<Lane>,
    rows: usize,
}

/// A thread encoding some of the columns: `(column index, leaf)` in, encoded chunks out.
struct Lane {
    sender: SyncSender<(usize, ArrowLeafColumn)>,
    thread: JoinHandle<Result<Vec<(usize, ArrowColumnChunk)>>>,
}

impl ParallelParquet {
    /// A file of `batches`' shape whose embedded Arrow schema (what Arrow readers read it as)
    /// is `file_schema`: the same columns, where a Decimal64 batch column is Decimal128.
    fn new(
        file: std::fs::File,
        schema: SchemaRef,
        file_schema: &Schema,
        mut properties: WriterProperties,
    ) -> Result<Self> {
        parquet::arrow::add_encoded_arrow_schema_to_metadata(file_schema, &mut properties);
        let options = parquet::arrow::arrow_writer::ArrowWriterOptions::new()
            .with_properties(properties)
            .with_skip_arrow_metadata(true);
        let writer =
            parquet::arrow::ArrowWriter::try_new_with_options(file, Arc::clone(&schema), options)?;
        let (file, factory) = writer.into_serialized_writer()?;
        Ok(Self {
            file,
            factory,
            schema,
            group: None,
            groups: 0,
        })
    }

    fn start_group(&mut self) -> Result<RowGroup> {
        let writers = self.factory.create_column_writers(self.groups)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut shares: Vec<Vec<(usize, ArrowColumnWriter)>> =
            (0..cores).map(|_| Vec::new()).collect();
        for (index, writer) in writers.into_iter().enumerate() {
            shares[index % cores].push((index, writer));
        }
        let lanes = shares
            .into_iter()
            .filter(|share| !share.is_empty())
            .map(|mut share| {
                let (sender, receiver) = sync_channel::<(usize, ArrowLeafColumn)>(2 * share.len());
                let thread = std::thread::Builder::new()
                    .name("kpi-parquet-encoder".into())
                    .spawn(move || -> Result<Vec<(usize, ArrowColumnChunk)>> {
                        for (index, leaf) in receiver {
                            if let Some((_, writer)) = share.iter_mut().find(|(i, _)| *i == index) {
                                writer.write(&leaf)?;
                            }
                        }
                        share
                            .into_iter()
                            .map(|(index, writer)| Ok((index, writer.close()?)))
                            .collect()
                    })?;
                Ok(Lane { sender, thread })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RowGroup { lanes, rows: 0 })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.group.is_none() {
            self.group = Some(self.start_group()?);
        }
        let Some(group) = self.group.as_mut() else {
            return Err(Error::internal("no row group"));
        };
        let lanes = group.lanes.len();
        for (index, (field, array)) in self.schema.fields().iter().zip(batch.columns()).enumerate()
        {
            // One leaf per column: the schema is flat.
            for leaf in compute_leaves(field, array)? {
                if group.lanes[index % lanes]
                    .sender
                    .send((index, leaf))
                    .is_err()
                {
                    // The lane stopped on an error: finishing the group reports it.
                    self.finish_group()?;
                    return Err(Error::internal("a Parquet encoder stopped"));
                }
            }
        }
        group.rows += batch.num_rows();
        if group.rows >= ROW_GROUP_ROWS {
            self.finish_group()?;
        }
        Ok(())
    }

    /// Waits for the row group's columns and appends them to the file, in column order.
    fn finish_group(&mut self) -> Result<()> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        let mut chunks = Vec::new();
        for lane in group.lanes {
            drop(lane.sender);
            let encoded = lane
                .thread
                .join()
                .map_err(|_| Error::internal("a Parquet encoder panicked"))??;
            chunks.extend(encoded);
        }
        chunks.sort_by_key(|(index, _)| *index);
        let mut row_group = self.file.next_row_group()?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.groups += 1;
        Ok(())
    }

    fn close(mut self) -> Result<()> {
        self.finish_group()?;
        self.file.close()?;
        Ok(())
    }
}

/// The output file.
pub(super) struct Output {
    path: PathBuf,
    temporary: PathBuf,
    models: usize,
    rows: CreditRows,
    written: usize,
    sender: Option<SyncSender<RecordBatch>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Output {
    /// Starts writing `path` (.parquet, else CSV) with a credit pair per model.
    pub(super) fn create(path: &Path, models: &[Model]) -> Result<Self> {
        // The file's schema: revenue credits are DECIMAL(18, 2), read as Decimal128 (18 digits
        // are stored as Parquet INT64). Batches for Parquet carry them as Decimal64, the same
        // 8-byte integers the file stores, so no column is widened to 16 bytes and narrowed
        // again; the file still says Decimal128 (see `ParallelParquet::new`).
        let schema_with = |revenue_type: DataType| -> SchemaRef {
            let mut fields = vec![
                Field::new("conversion_id", DataType::Utf8, false),
                Field::new("touch_id", DataType::Utf8, true),
                Field::new("position", DataType::UInt32, true),
                Field::new("channel", DataType::Utf8, false),
                Field::new("campaign", DataType::Utf8, true),
            ];
            for model in models {
                let (credit, revenue) = if models.len() == 1 {
                    ("credit".to_string(), "revenue_credit".to_string())
                } else {
                    (
                        format!("credit_{}", model.name()),
                        format!("revenue_credit_{}", model.name()),
                    )
                };
                fields.push(Field::new(credit, DataType::Float64, false));
                fields.push(Field::new(revenue, revenue_type.clone(), true));
            }
            Arc::new(Schema::new(fields))
        };
        let schema = schema_with(DataType::Decimal128(18, 2));
        let is_parquet = path.extension().and_then(|e| e.to_str()) == Some("parquet");
        let batch_schema = if is_parquet {
            schema_with(DataType::Decimal64(18, 2))
        } else {
            Arc::clone(&schema)
        };
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
        let mut writer = if is_parquet {
            let mut properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_dictionary_enabled(false);
            for repeated in ["position", "channel", "campaign"] {
                properties =
                    properties.set_column_dictionary_enabled(ColumnPath::from(repeated), true);
            }
            // Ids are opaque: no reader prunes by their ranges, and keeping them costs a
            // string comparison a row.
            for id in ["conversion_id", "touch_id"] {
                properties = properties
                    .set_column_statistics_enabled(ColumnPath::from(id), EnabledStatistics::None);
            }
            Writer::Parquet(Box::new(ParallelParquet::new(
                file,
                Arc::clone(&batch_schema),
                &schema,
                properties.build(),
            )?))
        } else {
            Writer::Csv(Box::new(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(std::io::BufWriter::new(file)),
            ))
        };
        let (sender, receiver) = sync_channel::<RecordBatch>(QUEUED_BATCHES);
        let thread = std::thread::Builder::new()
            .name("kpi-attribution-writer".into())
            .spawn(move || {
                for batch in receiver {
                    writer.write(&batch)?;
                }
                writer.close()
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            temporary,
            models: models.len(),
            rows: CreditRows::new(batch_schema, models.len()),
            written: 0,
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Empty rows of this file's shape, for building batches elsewhere.
    pub(super) fn new_rows(&self) -> CreditRows {
        CreditRows::new(Arc::clone(&self.rows.schema), self.models)
    }

    /// The rows being built, written by [`Output::end_entity`] and [`Output::finish`].
    pub(super) fn rows(&mut self) -> &mut CreditRows {
        &mut self.rows
    }

    /// Ends an entity's rows: writes a batch when enough rows are buffered.
    pub(super) fn end_entity(&mut self) -> Result<()> {
        if self.rows.len() >= BATCH_ROWS {
            let batch = self.rows.take()?;
            self.write(batch)?;
        }
        Ok(())
    }

    /// Hands a batch to the writing thread.
    pub(super) fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.written += batch.num_rows();
        let sent = match &self.sender {
            Some(sender) => sender.send(batch).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        Err(self
            .join()
            .err()
            .unwrap_or_else(|| Error::internal("the attribution writer stopped early")))
    }

    fn join(&mut self) -> Result<()> {
        self.sender = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| Error::internal("the attribution writer panicked"))?,
            None => Ok(()),
        }
    }

    /// Writes what is left, closes the file and gives it its name; returns the rows written.
    pub(super) fn finish(mut self) -> Result<usize> {
        let result = (|| -> Result<()> {
            // No rows still writes a file with the columns (a CSV header, a Parquet schema).
            if self.rows.len() > 0 || self.written == 0 {
                let batch = self.rows.take()?;
                self.write(batch)?;
            }
            self.join()?;
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
        Ok(self.written)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        // A run that failed half-way leaves no half-written file behind.
        if self.thread.is_some() {
            let _ = self.join();
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}
