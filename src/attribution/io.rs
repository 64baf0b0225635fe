//! Reading touches and conversions from CSV or Parquet files, and writing credits, for
//! `kpi attribution`. Columns are found by name (mappable); every bad value is reported with
//! its file, row and column. Output files are written under a temporary name, then renamed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, StringArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDateTime, Utc};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use super::{Conversion, Credit, Model, Touch};
use crate::error::{Error, Result};

/// Column names of the inputs; defaults are the reference fixtures' names.
#[derive(Debug, Clone)]
pub struct Columns {
    names: BTreeMap<&'static str, String>,
}

const KEYS: [(&str, &str); 9] = [
    ("touch_id", "touch_id"),
    ("touch_entity", "user_id"),
    ("touch_ts", "ts"),
    ("channel", "channel"),
    ("campaign", "campaign"),
    ("conversion_id", "conversion_id"),
    ("conversion_entity", "user_id"),
    ("conversion_ts", "ts"),
    ("revenue", "revenue"),
];

impl Columns {
    /// Applies `KEY=COLUMN` mappings over the defaults.
    pub fn parse(mappings: &[String]) -> Result<Self> {
        let mut names: BTreeMap<&'static str, String> =
            KEYS.iter().map(|(k, v)| (*k, v.to_string())).collect();
        for mapping in mappings
            .iter()
            .flat_map(|m| m.split(','))
            .filter(|m| !m.is_empty())
        {
            let (key, column) = mapping.split_once('=').ok_or_else(|| {
                Error::input(
                    "bad_columns",
                    format!("`{mapping}` must be KEY=COLUMN, such as touch_entity=contact_id"),
                )
            })?;
            let Some((known, _)) = KEYS.iter().find(|(k, _)| *k == key.trim()) else {
                let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(Error::input(
                    "bad_columns",
                    format!("unknown column key `{key}`; use one of {}", keys.join(", ")),
                ));
            };
            names.insert(known, column.trim().to_string());
        }
        Ok(Self { names })
    }

    pub(crate) fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.names.get(key).map(String::as_str).unwrap_or(key)
    }
}

/// A file's rows as text columns.
struct TextTable {
    path: PathBuf,
    columns: BTreeMap<String, Vec<Option<String>>>,
    rows: usize,
}

impl TextTable {
    fn column(&self, name: &str) -> Result<&Vec<Option<String>>> {
        self.columns.get(name).ok_or_else(|| {
            let available: Vec<&str> = self.columns.keys().map(String::as_str).collect();
            Error::input(
                "missing_column",
                format!(
                    "{}: no column `{name}` (columns: {}); map it with --columns KEY={name}",
                    self.path.display(),
                    available.join(", ")
                ),
            )
        })
    }

    fn optional(&self, name: &str) -> Option<&Vec<Option<String>>> {
        self.columns.get(name)
    }
}

/// Opens a CSV (every column as text, so timestamps keep their offsets and ids their leading
/// zeros) or Parquet file as a DataFrame.
pub(crate) async fn open_frame(
    ctx: &SessionContext,
    path: &Path,
) -> Result<datafusion::dataframe::DataFrame> {
    use std::io::BufRead;
    let display = path.display().to_string();
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::input("unreadable_input", format!("{display}: {e}")))?;
            let mut header = String::new();
            std::io::BufReader::new(file)
                .read_line(&mut header)
                .map_err(|e| Error::input("unreadable_input", format!("{display}: {e}")))?;
            let fields: Vec<Field> = header
                .trim_end()
                .split(',')
                .map(|name| Field::new(name.trim().trim_matches('"'), DataType::Utf8, true))
                .collect();
            let schema = Schema::new(fields);
            Ok(ctx
                .read_csv(
                    &display,
                    CsvReadOptions::new().has_header(true).schema(&schema),
                )
                .await?)
        }
        Some("parquet") => Ok(ctx
            .read_parquet(&display, ParquetReadOptions::default())
            .await?),
        _ => Err(Error::input(
            "bad_input",
            format!("{display}: use a .csv or .parquet file"),
        )),
    }
}

async fn read_text_table(path: &Path) -> Result<TextTable> {
    let ctx = SessionContext::new();
    let display = path.display().to_string();
    let frame = open_frame(&ctx, path).await?;
    let batches = frame.collect().await.map_err(|e| {
        Error::input(
            "unreadable_input",
            format!("{display}: {}", e.strip_backtrace()),
        )
    })?;
    let mut columns: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut rows = 0;
    for batch in &batches {
        rows += batch.num_rows();
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let text = arrow::compute::cast(array, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let column = columns.entry(field.name().clone()).or_default();
            column.extend((0..text.len()).map(|i| {
                (!text.is_null(i))
                    .then(|| text.value(i).to_string())
                    .filter(|v| !v.is_empty())
            }));
        }
    }
    Ok(TextTable {
        path: path.to_path_buf(),
        columns,
        rows,
    })
}

fn parse_instant(table: &TextTable, column: &str, row: usize, text: &str) -> Result<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Ok(naive.and_utc());
        }
    }
    Err(Error::input("bad_timestamp", format!(
        "{} row {}: `{column}` = `{text}` is not a timestamp; use RFC 3339 such as 2024-01-15T12:00:00Z or with an offset",
        table.path.display(),
        row + 2
    )))
}

fn required<'a>(
    table: &TextTable,
    column: &str,
    values: &'a [Option<String>],
    row: usize,
) -> Result<&'a str> {
    values[row].as_deref().ok_or_else(|| {
        Error::input(
            "missing_value",
            format!(
                "{} row {}: `{column}` is empty",
                table.path.display(),
                row + 2
            ),
        )
    })
}

/// Reads touches from a CSV or Parquet file.
pub async fn read_touches(path: &Path, columns: &Columns) -> Result<Vec<Touch>> {
    let table = read_text_table(path).await?;
    let (id, entity, ts, channel) = (
        table.column(columns.get("touch_id"))?,
        table.column(columns.get("touch_entity"))?,
        table.column(columns.get("touch_ts"))?,
        table.column(columns.get("channel"))?,
    );
    let campaign = table.optional(columns.get("campaign"));
    let mut touches = Vec::with_capacity(table.rows);
    for row in 0..table.rows {
        touches.push(Touch {
            id: required(&table, columns.get("touch_id"), id, row)?.to_string(),
            entity: required(&table, columns.get("touch_entity"), entity, row)?.to_string(),
            ts: parse_instant(
                &table,
                columns.get("touch_ts"),
                row,
                required(&table, columns.get("touch_ts"), ts, row)?,
            )?,
            channel: required(&table, columns.get("channel"), channel, row)?.to_string(),
            campaign: campaign.and_then(|c| c[row].clone()),
        });
    }
    Ok(touches)
}

/// Reads conversions from a CSV or Parquet file (revenue optional, in currency units).
pub async fn read_conversions(path: &Path, columns: &Columns) -> Result<Vec<Conversion>> {
    let table = read_text_table(path).await?;
    let (id, entity, ts) = (
        table.column(columns.get("conversion_id"))?,
        table.column(columns.get("conversion_entity"))?,
        table.column(columns.get("conversion_ts"))?,
    );
    let revenue = table.optional(columns.get("revenue"));
    let mut conversions = Vec::with_capacity(table.rows);
    for row in 0..table.rows {
        let revenue_cents =
            match revenue.and_then(|r| r[row].as_deref()) {
                None => None,
                Some(text) => Some(parse_cents(text).ok_or_else(|| {
                    Error::input(
                        "bad_revenue",
                        format!(
                    "{} row {}: `{}` = `{text}` is not an amount; use a number such as 100.00",
                    table.path.display(), row + 2, columns.get("revenue")
                ),
                    )
                })?),
            };
        conversions.push(Conversion {
            id: required(&table, columns.get("conversion_id"), id, row)?.to_string(),
            entity: required(&table, columns.get("conversion_entity"), entity, row)?.to_string(),
            ts: parse_instant(
                &table,
                columns.get("conversion_ts"),
                row,
                required(&table, columns.get("conversion_ts"), ts, row)?,
            )?,
            revenue_cents,
        });
    }
    Ok(conversions)
}

/// Parses an amount such as `9.99`, `-3`, `1e3` into cents, exactly for up to 2 decimals.
pub fn parse_cents(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some((whole, fraction)) = text.split_once('.') {
        if fraction.len() <= 2
            && fraction.chars().all(|c| c.is_ascii_digit())
            && !whole.contains(['e', 'E'])
        {
            let negative = whole.starts_with('-');
            let whole: i64 = whole
                .trim_start_matches(['-', '+'])
                .parse()
                .ok()
                .or(Some(0).filter(|_| whole.trim_start_matches(['-', '+']).is_empty()))?;
            let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
            let cents = whole * 100 + fraction;
            return Some(if negative { -cents } else { cents });
        }
    }
    let value: f64 = text.parse().ok()?;
    value.is_finite().then(|| (value * 100.0).round() as i64)
}

/// Credits of several models on the same rows (every model sees the same paths).
pub struct CreditTable {
    /// The models, in column order.
    pub models: Vec<Model>,
    /// Per model, its credits sorted by (conversion, position).
    pub credits: Vec<Vec<Credit>>,
}

/// Writes credits as CSV or Parquet (by extension), atomically.
pub fn write_credits(path: &Path, table: &CreditTable) -> Result<usize> {
    let Some(first) = table.credits.first() else {
        return Ok(0);
    };
    let single = table.models.len() == 1;
    let mut fields = vec![
        Field::new("conversion_id", DataType::Utf8, false),
        Field::new("touch_id", DataType::Utf8, true),
        Field::new("position", DataType::UInt32, true),
        Field::new("channel", DataType::Utf8, false),
        Field::new("campaign", DataType::Utf8, true),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(
            first
                .iter()
                .map(|c| Some(c.conversion_id.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            first
                .iter()
                .map(|c| c.touch_id.as_deref())
                .collect::<StringArray>(),
        ),
        Arc::new(
            first
                .iter()
                .map(|c| c.position.map(|p| p as u32))
                .collect::<UInt32Array>(),
        ),
        Arc::new(
            first
                .iter()
                .map(|c| Some(c.channel.as_str()))
                .collect::<StringArray>(),
        ),
        Arc::new(
            first
                .iter()
                .map(|c| c.campaign.as_deref())
                .collect::<StringArray>(),
        ),
    ];
    for (model, credits) in table.models.iter().zip(&table.credits) {
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
        arrays.push(Arc::new(
            credits.iter().map(|c| c.credit).collect::<Float64Array>(),
        ));
        arrays.push(Arc::new(
            credits
                .iter()
                .map(|c| c.revenue_cents.map(i128::from))
                .collect::<Decimal128Array>()
                .with_precision_and_scale(18, 2)?,
        ));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
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
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&temporary)?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => {
                let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
                writer.write(&batch)?;
                writer.close()?;
            }
            _ => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file);
                writer.write(&batch)?;
            }
        }
        std::fs::rename(&temporary, path)?;
        Ok(())
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::unavailable(
            "write_failed",
            format!("cannot write {}: {error}", path.display()),
        ));
    }
    Ok(batch.num_rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_to_exact_cents() {
        assert_eq!(parse_cents("9.99"), Some(999));
        assert_eq!(parse_cents("100"), Some(10_000));
        assert_eq!(parse_cents("0.1"), Some(10));
        assert_eq!(parse_cents("-3.50"), Some(-350));
        assert_eq!(parse_cents(".5"), Some(50));
        assert_eq!(parse_cents("abc"), None);
    }
}
