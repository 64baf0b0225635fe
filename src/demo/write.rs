//! Rows → Arrow batches → Parquet files, each written under a temporary name and renamed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::simulate::*;
use crate::error::{Error, Result};

pub(super) struct Writer {
    pub(super) out: PathBuf,
    pub(super) summary: BTreeMap<String, (usize, usize, u64)>,
}

impl Writer {
    /// Writes one Parquet file atomically: a hidden temporary name, then a rename.
    pub(super) fn write(&mut self, table: &str, file: &str, batch: RecordBatch) -> Result<()> {
        let path = self.out.join(table.replace('.', "/")).join(file);
        let folder = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.out.clone());
        std::fs::create_dir_all(&folder)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let temporary = folder.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| -> Result<u64> {
            let handle = std::fs::File::create(&temporary)?;
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by("kpi demo".to_string())
                .build();
            let mut writer = ArrowWriter::try_new(handle, batch.schema(), Some(properties))?;
            writer.write(&batch)?;
            let handle = writer.into_inner()?;
            handle.sync_all()?;
            let bytes = handle.metadata()?.len();
            drop(handle);
            std::fs::rename(&temporary, &path)?;
            Ok(bytes)
        })();
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(Error::unavailable(
                    "demo_write",
                    format!("cannot write {}: {error}", path.display()),
                ));
            }
        };
        let entry = self.summary.entry(table.to_string()).or_default();
        entry.0 += batch.num_rows();
        entry.1 += 1;
        entry.2 += bytes;
        Ok(())
    }
}

pub(super) fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub(super) fn money() -> DataType {
    DataType::Decimal128(12, 2)
}

pub(super) fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

pub(super) fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

pub(super) fn optional_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

pub(super) fn timestamps(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        values
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

pub(super) fn decimals(values: impl Iterator<Item = i128>) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from_iter_values(values).with_precision_and_scale(12, 2)?,
    ))
}

pub(super) fn ads_batch(rows: &[AdRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("date", DataType::Date32, false),
            Field::new("platform", DataType::Utf8, false),
            Field::new("campaign_id", DataType::Utf8, false),
            Field::new("campaign_name", DataType::Utf8, false),
            Field::new("channel", DataType::Utf8, false),
            Field::new("impressions", DataType::Int64, false),
            Field::new("clicks", DataType::Int64, false),
            Field::new("spend", money(), false),
            Field::new("currency", DataType::Utf8, false),
            Field::new("platform_conversions", DataType::Int64, false),
        ],
        vec![
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.date))),
            strings(rows.iter().map(|r| r.platform)),
            strings(rows.iter().map(|r| r.campaign_id)),
            strings(rows.iter().map(|r| r.campaign_name)),
            strings(rows.iter().map(|r| r.channel)),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.impressions),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.clicks))),
            decimals(rows.iter().map(|r| r.spend_cents))?,
            strings(rows.iter().map(|_| "USD")),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.platform_conversions),
            )),
        ],
    )
}

pub(super) fn sessions_batch(rows: &[SessionRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("session_id", DataType::Utf8, false),
            Field::new("anonymous_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, true),
            Field::new("started_at", utc_timestamp(), false),
            Field::new("landing_page", DataType::Utf8, false),
            Field::new("utm_source", DataType::Utf8, true),
            Field::new("utm_medium", DataType::Utf8, true),
            Field::new("utm_campaign", DataType::Utf8, true),
            Field::new("utm_content", DataType::Utf8, true),
            Field::new("channel", DataType::Utf8, false),
            Field::new("device", DataType::Utf8, false),
            Field::new("country", DataType::Utf8, false),
            Field::new("pageviews", DataType::Int32, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.session_id.as_str())),
            strings(rows.iter().map(|r| r.anonymous_id.as_str())),
            optional_strings(rows.iter().map(|r| r.contact_id.as_deref())),
            timestamps(rows.iter().map(|r| Some(r.started_at))),
            strings(rows.iter().map(|r| r.landing_page)),
            optional_strings(rows.iter().map(|r| r.utm_source.as_deref())),
            optional_strings(rows.iter().map(|r| r.utm_medium.as_deref())),
            optional_strings(rows.iter().map(|r| r.utm_campaign.as_deref())),
            optional_strings(rows.iter().map(|r| r.utm_content.as_deref())),
            strings(rows.iter().map(|r| r.channel)),
            strings(rows.iter().map(|r| r.device)),
            strings(rows.iter().map(|r| r.country)),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.pageviews),
            )),
        ],
    )
}

pub(super) fn events_batch(rows: &[EventRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("session_id", DataType::Utf8, false),
            Field::new("anonymous_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, true),
            Field::new("occurred_at", utc_timestamp(), false),
            Field::new("name", DataType::Utf8, false),
            Field::new("page", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.event_id.as_str())),
            strings(rows.iter().map(|r| r.session_id.as_str())),
            strings(rows.iter().map(|r| r.anonymous_id.as_str())),
            optional_strings(rows.iter().map(|r| r.contact_id.as_deref())),
            timestamps(rows.iter().map(|r| Some(r.occurred_at))),
            strings(rows.iter().map(|r| r.name)),
            strings(rows.iter().map(|r| r.page)),
        ],
    )
}

pub(super) fn contacts_batch(rows: &[ContactRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("created_at", utc_timestamp(), false),
            Field::new("lead_source", DataType::Utf8, false),
            Field::new("company_size", DataType::Utf8, false),
            Field::new("industry", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("owner", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.created_at))),
            strings(rows.iter().map(|r| r.lead_source.as_str())),
            strings(rows.iter().map(|r| r.company_size)),
            strings(rows.iter().map(|r| r.industry)),
            strings(rows.iter().map(|r| r.region)),
            strings(rows.iter().map(|r| r.owner)),
        ],
    )
}

pub(super) fn stages_batch(rows: &[StageRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("changed_at", utc_timestamp(), false),
            Field::new("from_stage", DataType::Utf8, true),
            Field::new("to_stage", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.changed_at))),
            optional_strings(rows.iter().map(|r| r.from_stage)),
            strings(rows.iter().map(|r| r.to_stage)),
        ],
    )
}

pub(super) fn opportunities_batch(rows: &[OpportunityRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("opportunity_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("created_at", utc_timestamp(), false),
            Field::new("closed_at", utc_timestamp(), true),
            Field::new("status", DataType::Utf8, false),
            Field::new("amount", money(), false),
            Field::new("currency", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.opportunity_id.as_str())),
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.created_at))),
            timestamps(rows.iter().map(|r| r.closed_at)),
            strings(rows.iter().map(|r| r.status)),
            decimals(rows.iter().map(|r| r.amount_cents))?,
            strings(rows.iter().map(|_| "USD")),
        ],
    )
}

pub(super) fn sends_batch(rows: &[SendRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("send_id", DataType::Utf8, false),
            Field::new("email_campaign_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("sent_at", utc_timestamp(), false),
            Field::new("delivered", DataType::Boolean, false),
            Field::new("opened_at", utc_timestamp(), true),
            Field::new("clicked_at", utc_timestamp(), true),
            Field::new("unsubscribed", DataType::Boolean, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.send_id.as_str())),
            strings(rows.iter().map(|r| r.email_campaign_id.as_str())),
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.sent_at))),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.delivered).collect::<Vec<_>>(),
            )),
            timestamps(rows.iter().map(|r| r.opened_at)),
            timestamps(rows.iter().map(|r| r.clicked_at)),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.unsubscribed).collect::<Vec<_>>(),
            )),
        ],
    )
}
