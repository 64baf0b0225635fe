//! The one query shape metrics need: an aggregate over a table, bucketed into periods.
//!
//! Built with DataFusion's `Expr`/`DataFrame` API, never by pasting request values into SQL:
//! identifiers and SQL fragments come only from validated definitions, period bounds and
//! dimension values are literals. Buckets are computed in Rust (see `time.rs`) and passed in as
//! bounds, so week starts, time zones and DST are decided in one place; SQL only compares.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::TableReference;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{cast, lit, when, Expr};
use datafusion::prelude::DataFrame;

use super::Engine;
use crate::error::{Error, Result};

/// A period's bounds in both forms: local dates for date columns, instants for timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// First local day.
    pub start_day: NaiveDate,
    /// First local day after the period.
    pub end_day: NaiveDate,
    /// Instant the period starts.
    pub start: DateTime<Utc>,
    /// Instant the period ends (exclusive).
    pub end: DateTime<Utc>,
}

/// An aggregate of one metric piece over buckets.
#[derive(Debug, Clone)]
pub struct AggregateQuery {
    /// Validated table or view name (`reporting.sessions`).
    pub table: String,
    /// Validated aggregate SQL expression.
    pub measure: String,
    /// Validated SQL predicate.
    pub filter: Option<String>,
    /// Validated date or timestamp column.
    pub time_column: String,
    /// Non-overlapping periods; rows outside all of them are ignored.
    pub buckets: Vec<Bucket>,
    /// Validated dimension columns to group by.
    pub dimensions: Vec<String>,
    /// Validated dimension columns and the value they must equal (compared as text).
    pub equals: Vec<(String, String)>,
    /// Model and lookback when `table` is the attribution table (`None`: project default).
    pub attribution: Option<crate::attribution::Settings>,
}

/// One group of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    /// Index into [`AggregateQuery::buckets`].
    pub bucket: usize,
    /// Dimension values as text, in the order asked.
    pub dimensions: Vec<Option<String>>,
    /// The measure, as a float (money keeps its cents: decimals convert exactly enough for
    /// two decimal places up to 2^53 cents).
    pub value: Option<f64>,
}

impl Bucket {
    /// The smallest period holding every bucket (`None` without buckets).
    pub fn hull(buckets: &[Bucket]) -> Option<Bucket> {
        Some(Bucket {
            start_day: buckets.iter().map(|b| b.start_day).min()?,
            end_day: buckets.iter().map(|b| b.end_day).max()?,
            start: buckets.iter().map(|b| b.start).min()?,
            end: buckets.iter().map(|b| b.end).max()?,
        })
    }
}

/// `time_column` (of type `time_type`) within `period`: from its start, before its end.
pub(crate) fn within(time_type: &DataType, time_column: &str, period: &Bucket) -> Result<Expr> {
    let time = column(time_column);
    Ok(time
        .clone()
        .gt_eq(bound(
            time_type,
            time_column,
            period.start_day,
            period.start,
        )?)
        .and(time.lt(bound(time_type, time_column, period.end_day, period.end)?)))
}

/// A period bound as a literal comparable with a time column of type `time_type`: the local
/// day for date columns, the instant for timestamps.
fn bound(
    time_type: &DataType,
    time_column: &str,
    day: NaiveDate,
    instant: DateTime<Utc>,
) -> Result<Expr> {
    match time_type {
        DataType::Date32 | DataType::Date64 => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(day);
            Ok(lit(ScalarValue::Date32(Some(
                (day - epoch).num_days() as i32
            ))))
        }
        DataType::Timestamp(..) => Ok(lit(ScalarValue::TimestampMicrosecond(
            Some(instant.timestamp_micros()),
            Some(Arc::from("UTC")),
        ))),
        other => Err(Error::input(
            "bad_time_column",
            format!("time column `{time_column}` is {other}, not a date or timestamp"),
        )),
    }
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::from_name(name))
}

impl Engine {
    /// Runs an aggregate query against the catalog as last refreshed: callers refresh once
    /// per request ([`Engine::refresh`]), not once per metric part. With the rollup store on,
    /// stored partitions answer what they can (see `rollup`); the rest is computed here.
    pub async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        if query.buckets.is_empty() {
            return Ok(Vec::new());
        }
        match self.rollups() {
            Some(rollups) => rollups.aggregate(self, query).await,
            None => self.aggregate_direct(query).await,
        }
    }

    /// The relation an aggregate reads: its table or view, or the attribution table under the
    /// query's model and lookback.
    pub(crate) async fn relation(&self, query: &AggregateQuery) -> Result<DataFrame> {
        self.relation_in(&self.inner.ctx, query).await
    }

    /// [`Engine::relation`] in another session of this engine (the build session).
    pub(crate) async fn relation_in(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        query: &AggregateQuery,
    ) -> Result<DataFrame> {
        let attributed = format!(
            "{}.{}",
            super::REPORTING_SCHEMA,
            crate::attribution::table::TABLE_NAME
        );
        let override_table = query
            .attribution
            .filter(|_| query.table.eq_ignore_ascii_case(&attributed))
            .map(|settings| self.attribution_table(settings));
        Ok(match override_table {
            Some(table) => ctx.read_table(Arc::new(table))?,
            None => ctx.table(TableReference::parse_str(&query.table)).await?,
        })
    }

    /// Computes an aggregate straight from the views (the reference path).
    pub async fn aggregate_direct(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let frame = self.relation(query).await?;
        self.aggregate_over(frame, query).await
    }

    /// Computes an aggregate over `frame`, the query's relation as [`Engine::relation`] gave it.
    pub(crate) async fn aggregate_over(
        &self,
        frame: DataFrame,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>> {
        if query.buckets.is_empty() {
            return Ok(Vec::new());
        }
        let query = query.clone();
        let work = async move {
            let time_type = frame
                .schema()
                .field_with_unqualified_name(&query.time_column)?
                .data_type()
                .clone();
            let Some(all) = Bucket::hull(&query.buckets) else {
                return Ok(Vec::new());
            };
            let mut case: Option<datafusion::logical_expr::conditional_expressions::CaseBuilder> =
                None;
            for (index, bucket) in query.buckets.iter().enumerate() {
                let inside = within(&time_type, &query.time_column, bucket)?;
                let then = lit(index as i64);
                case = Some(match case {
                    None => when(inside, then),
                    Some(mut builder) => {
                        builder.when(inside, then);
                        builder
                    }
                });
            }
            let Some(case) = case else {
                return Ok(Vec::new());
            };
            let bucket_expr = case.end()?;
            let mut frame = frame.filter(within(&time_type, &query.time_column, &all)?)?;
            if let Some(filter) = &query.filter {
                let predicate = frame.parse_sql_expr(filter)?;
                frame = frame.filter(predicate)?;
            }
            for (dimension, value) in &query.equals {
                frame =
                    frame.filter(cast(column(dimension), DataType::Utf8).eq(lit(value.clone())))?;
            }
            let measure = frame.parse_sql_expr(&query.measure)?;
            let mut groups = vec![bucket_expr.alias("__bucket")];
            for (index, dimension) in query.dimensions.iter().enumerate() {
                groups.push(cast(column(dimension), DataType::Utf8).alias(format!("__dim{index}")));
            }
            let frame = frame.aggregate(
                groups,
                vec![cast(measure, DataType::Float64).alias("__value")],
            )?;
            let batches = frame.collect().await?;
            let mut rows = Vec::new();
            for batch in batches {
                let buckets = batch.column(0).as_primitive::<Int64Type>().clone();
                let values = batch
                    .column(batch.num_columns() - 1)
                    .as_primitive::<Float64Type>()
                    .clone();
                for row in 0..batch.num_rows() {
                    if buckets.is_null(row) {
                        continue;
                    }
                    let dimensions = (0..query.dimensions.len())
                        .map(|index| {
                            let array = batch.column(1 + index).as_string::<i32>();
                            (!array.is_null(row)).then(|| array.value(row).to_string())
                        })
                        .collect();
                    rows.push(AggregateRow {
                        bucket: buckets.value(row) as usize,
                        dimensions,
                        value: (!values.is_null(row)).then(|| values.value(row)),
                    });
                }
            }
            Ok::<_, Error>(rows)
        };
        self.run_query("metric query", work).await
    }
}
