//! The time range a landed file's rows cover in one column, from its Parquet footer's
//! row-group statistics (no data page is read).

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `(min, max, nulls, rows)` of `column` in the file: min and max as UTC microseconds (dates
/// at UTC midnight), the rows whose value is null, and the file's row count; `None` when the
/// footer cannot say (no statistics, a partition column, an unreadable file): such a file
/// counts as covering every period. A file whose values are all null has `min > max` (it has no
/// row in any period). `cached` is the footer when the engine has it (read at listing): the
/// file is read only when it has not.
pub async fn time_span(
    store: Arc<dyn ObjectStore>,
    cached: Option<Arc<ParquetMetaData>>,
    meta: &ObjectMeta,
    column: &str,
) -> Option<(i64, i64, u64, u64)> {
    let metadata = match cached {
        Some(metadata) => metadata,
        None => Arc::new(footer(&store, meta).await?),
    };
    let file = metadata.file_metadata();
    let schema =
        parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
            .ok()?;
    let converter = StatisticsConverter::try_new(column, &schema, file.schema_descr()).ok()?;
    let row_groups = metadata.row_groups();
    if row_groups.is_empty() {
        return None;
    }
    let nulls = converter
        .row_group_null_counts(row_groups.iter())
        .ok()?
        .iter()
        .try_fold(0u64, |sum, count| count.map(|c| sum + c))?;
    let rows = u64::try_from(file.num_rows()).ok()?;
    if nulls == rows {
        // Every value null: the file has no row in any period.
        let (low, high) = crate::engine::NOWHERE;
        return Some((low, high, nulls, rows));
    }
    let mins = converter.row_group_mins(row_groups.iter()).ok()?;
    let maxes = converter.row_group_maxes(row_groups.iter()).ok()?;
    let scale = match mins.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => Scale::Multiply(1_000_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => Scale::Multiply(1_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Scale::Multiply(1),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Scale::Divide(1_000),
        DataType::Date32 => Scale::Multiply(MICROS_PER_DAY),
        DataType::Date64 => Scale::Multiply(1_000),
        _ => return None,
    };
    let low = extreme(&mins, i64::min)?;
    let high = extreme(&maxes, i64::max)?;
    Some((scale.apply(low), scale.apply(high), nulls, rows))
}

/// Reads a file's footer: the last 64 KiB first, more when the footer is bigger.
async fn footer(store: &Arc<dyn ObjectStore>, meta: &ObjectMeta) -> Option<ParquetMetaData> {
    let size = meta.size;
    let mut want = size.min(64 * 1024);
    loop {
        let bytes = store
            .get_range(&meta.location, size - want..size)
            .await
            .ok()?;
        let mut reader = ParquetMetaDataReader::new();
        match reader.try_parse_sized(&bytes, size) {
            Ok(()) => return reader.finish().ok(),
            Err(ParquetError::NeedMoreData(needed)) if (needed as u64) > want => {
                want = (needed as u64).min(size);
            }
            Err(_) => return None,
        }
    }
}

enum Scale {
    Multiply(i64),
    Divide(i64),
}

impl Scale {
    fn apply(&self, value: i64) -> i64 {
        match self {
            Scale::Multiply(factor) => value.saturating_mul(*factor),
            Scale::Divide(divisor) => value.div_euclid(*divisor),
        }
    }
}

/// The smallest (or largest) of the row groups' values; `None` if any row group has none.
fn extreme(values: &dyn Array, pick: fn(i64, i64) -> i64) -> Option<i64> {
    if values.null_count() > 0 {
        return None;
    }
    let ints = arrow::compute::cast(values, &DataType::Int64).ok()?;
    let ints = ints.as_primitive::<Int64Type>();
    ints.iter().flatten().reduce(pick)
}
