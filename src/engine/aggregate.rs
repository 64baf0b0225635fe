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
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::TableReference;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::utils::find_aggregate_exprs;
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

/// Groups `frame` by `groups` and computes `measure` as `__value` (a float): the aggregate
/// calls in it are computed by the aggregate, the rest of the expression over their results
/// (as DataFusion's SQL planner does), so the plan runs with or without the optimizer.
fn aggregate_measure(frame: DataFrame, groups: Vec<Expr>, measure: Expr) -> Result<DataFrame> {
    let calls = find_aggregate_exprs(std::iter::once(&measure));
    if calls.is_empty() {
        // Not an aggregate: DataFusion's own error says so.
        return Ok(frame.aggregate(
            groups,
            vec![cast(measure, DataType::Float64).alias("__value")],
        )?);
    }
    let named: Vec<Expr> = groups
        .iter()
        .map(|group| column(&group.schema_name().to_string()))
        .collect();
    let results: Vec<(Expr, Expr)> = calls
        .iter()
        .enumerate()
        .map(|(at, call)| (call.clone(), column(&format!("__call{at}"))))
        .collect();
    let aggregates = calls
        .into_iter()
        .enumerate()
        .map(|(at, call)| call.alias(format!("__call{at}")))
        .collect();
    let frame = frame.aggregate(groups, aggregates)?;
    let value = measure
        .transform_down(|expr| {
            Ok(match results.iter().find(|(call, _)| *call == expr) {
                Some((_, result)) => Transformed::yes(result.clone()),
                None => Transformed::no(expr),
            })
        })?
        .data;
    let mut outputs = named;
    outputs.push(cast(value, DataType::Float64).alias("__value"));
    Ok(frame.select(outputs)?)
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
        self.aggregate_in(frame, query, None).await
    }

    /// [`Engine::aggregate_over`] a kept window (see [`Engine::windowed`]): planned without
    /// the logical optimizer. Its rows are a few thousand in memory, where pushing filters and
    /// projections down saves less than optimizing costs (a landed day's report plans dozens
    /// of these). Nothing here needs the optimizer to run: a measure's aggregate calls are
    /// computed by the aggregate (see [`aggregate_measure`]), and measures and filters hold no
    /// subquery (`kpi check` refuses one; `parse_sql_expr` cannot resolve its table either).
    pub(crate) async fn aggregate_over_window(
        &self,
        frame: DataFrame,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>> {
        let lean = self.inner.lean.state();
        self.aggregate_in(frame, query, Some(lean)).await
    }

    async fn aggregate_in(
        &self,
        frame: DataFrame,
        query: &AggregateQuery,
        lean: Option<datafusion::execution::context::SessionState>,
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
            let frame = aggregate_measure(frame, groups, measure)?;
            let frame = match lean {
                Some(lean) => DataFrame::new(lean, frame.into_parts().1),
                None => frame,
            };
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Float64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;
    use crate::config::{Config, Overrides};
    use crate::engine::safety::has_subquery;

    /// An engine over one table, `shop.orders`: (2024-10-04, NA, 10.5), (2024-10-05, EMEA,
    /// 20), (2024-10-05, NA, 5).
    async fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::TempDir::new().expect("dir");
        let orders = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("day", DataType::Date32, false),
                Field::new("region", DataType::Utf8, false),
                Field::new("amount", DataType::Float64, false),
            ])),
            vec![
                Arc::new(Date32Array::from(vec![20_000, 20_001, 20_001])),
                Arc::new(StringArray::from(vec!["NA", "EMEA", "NA"])),
                Arc::new(Float64Array::from(vec![10.5, 20.0, 5.0])),
            ],
        )
        .expect("batch");
        let path = dir.path().join("data/shop/orders/part-0.parquet");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let file = std::fs::File::create(&path).expect("create");
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, orders.schema(), None).expect("writer");
        writer.write(&orders).expect("write");
        writer.close().expect("close");
        std::fs::write(
            dir.path().join("kpi.toml"),
            "[sources.shop]\nkind = \"crm\"\n",
        )
        .expect("config");
        let config = Arc::new(Config::load(dir.path(), &Overrides::default()).expect("config"));
        let engine = Engine::try_new(config).expect("engine");
        engine.refresh().await.expect("refresh");
        (dir, engine)
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 10, d).expect("day")
    }

    fn bucket(from: u32, to: u32) -> Bucket {
        let instant = |d: u32| day(d).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        Bucket {
            start_day: day(from),
            end_day: day(to),
            start: instant(from),
            end: instant(to),
        }
    }

    fn query(measure: &str, filter: Option<&str>, dimensions: &[&str]) -> AggregateQuery {
        AggregateQuery {
            table: "shop.orders".into(),
            measure: measure.into(),
            filter: filter.map(str::to_string),
            time_column: "day".into(),
            buckets: vec![bucket(4, 5), bucket(5, 6)],
            dimensions: dimensions.iter().map(|d| d.to_string()).collect(),
            equals: Vec::new(),
            attribution: None,
        }
    }

    /// A row as (bucket, dimensions, value).
    type Row = (usize, Vec<Option<String>>, Option<f64>);

    fn sorted(mut rows: Vec<AggregateRow>) -> Vec<Row> {
        rows.sort_by(|a, b| (a.bucket, &a.dimensions).cmp(&(b.bucket, &b.dimensions)));
        rows.into_iter()
            .map(|row| (row.bucket, row.dimensions, row.value))
            .collect()
    }

    #[tokio::test]
    async fn a_kept_window_aggregates_as_the_views_do_with_nested_aggregate_calls() {
        let (_dir, engine) = engine().await;
        let na = || Some("NA".to_string());
        let emea = || Some("EMEA".to_string());
        let cases: Vec<(AggregateQuery, Vec<Row>)> = vec![
            (
                query("SUM(amount) / COUNT(*)", None, &[]),
                vec![(0, vec![], Some(10.5)), (1, vec![], Some(12.5))],
            ),
            (
                query("COUNT(DISTINCT region) + 0.5", None, &[]),
                vec![(0, vec![], Some(1.5)), (1, vec![], Some(2.5))],
            ),
            (
                query("SUM(amount)", None, &["region"]),
                vec![
                    (0, vec![na()], Some(10.5)),
                    (1, vec![emea()], Some(20.0)),
                    (1, vec![na()], Some(5.0)),
                ],
            ),
        ];
        for (query, expected) in cases {
            let direct = engine
                .aggregate_direct(&query)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", query.measure));
            assert_eq!(sorted(direct), expected, "{}", query.measure);
            let window = Bucket::hull(&query.buckets).expect("hull");
            let frame = engine.relation(&query).await.expect("relation");
            let frame = engine.windowed(frame, &query, window).expect("window");
            let kept = engine
                .aggregate_over_window(frame, &query)
                .await
                .expect("window aggregate");
            assert_eq!(sorted(kept), expected, "{} over a window", query.measure);
        }
    }

    /// `kpi check` refuses a metric whose plan this finds a subquery in (see
    /// `safety::has_subquery`); planned here, where an engine over a table is at hand.
    #[tokio::test]
    async fn a_subquery_is_found_in_a_filter_and_in_a_measure_and_nowhere_else() {
        let (_dir, engine) = engine().await;
        let plan = |sql: &'static str| {
            let engine = engine.clone();
            async move { engine.plan_sql(sql).await.expect("plan") }
        };
        let nested = "SELECT SUM(amount) FROM shop.orders \
                      WHERE region IN (SELECT region FROM shop.orders WHERE amount > 15)";
        assert!(has_subquery(&plan(nested).await));
        let scalar = "SELECT SUM(amount) - (SELECT MIN(amount) FROM shop.orders) FROM shop.orders";
        assert!(has_subquery(&plan(scalar).await));
        let flat = "SELECT region, SUM(amount) / COUNT(*) FROM shop.orders GROUP BY region";
        assert!(!has_subquery(&plan(flat).await));
    }
}
