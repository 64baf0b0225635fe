//! Which periods one landed file of a joined table can reach through a relation.
//!
//! A relation's rows take their time from one table (its time column's origin, see
//! `rollup::lineage`); another table it reads, a joined dimension such as `crm.contacts` or the
//! sessions a form submit happened in, can change rows at any time. For such a file, kpi asks
//! the relation itself: the relation is planned again with that table holding only the file
//! (every other table as landed) and the smallest and largest time of its rows is the file's
//! *reach*. The rollup store counts the file only for the periods its reach overlaps.
//!
//! That is exact only for relations whose rows grow with their inputs: projections, filters,
//! `DISTINCT`, sorts, `UNION ALL` and joins other than anti joins, with no subquery and the
//! table read once. Then every row a new file adds, and every row it changes (a left join's
//! null row that now finds a match), is a row of the relation over the file alone; a row made
//! of the file and a file landed later is reached by the later file. Any other relation
//! (an aggregate, a window, a `LIMIT`, the attribution table, a partitioned table) has no
//! reach: the file counts for every period.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan};
use object_store::ObjectMeta;

use super::{Engine, ViewDef, CATALOG, REPORTING_SCHEMA};
use crate::error::{Error, Result};

/// A file's reach: `Some((low, high))` in UTC microseconds (`low > high` when the relation has
/// no row from it), `None` for every period.
pub type Reach = Option<(i64, i64)>;

/// A span with no row in it (`low > high`): a file whose rows reach no period (a relation with
/// no row from it, a time column all null in it).
pub const NOWHERE: (i64, i64) = (i64::MAX, i64::MIN);

impl Engine {
    /// The reach of landed `file` of `table` through `relation`'s `column` (see the module
    /// doc). `views` names every view the relation reads (`reporting.x`, as the lineage
    /// names them): only those are planned in the probe's session; a relation that reads
    /// another fails to plan there, which errors (and the file then counts for every period).
    /// Errors only when the relation cannot be planned or run.
    pub(crate) async fn reach(
        &self,
        relation: &str,
        column: &str,
        views: &BTreeMap<String, String>,
        table: &str,
        file: &ObjectMeta,
    ) -> Result<Reach> {
        let (views, replaced, schema, source) = {
            let state = self.inner.catalog.lock().await;
            let Some(loaded) = state.tables.get(table) else {
                return Ok(None);
            };
            if !loaded.discovered.partition_cols.is_empty() {
                return Ok(None);
            }
            let read =
                |view: &&ViewDef| views.contains_key(&format!("{REPORTING_SCHEMA}.{}", view.name));
            (
                state.views.iter().filter(read).cloned().collect::<Vec<_>>(),
                loaded.discovered.name.clone(),
                Arc::clone(&loaded.schema),
                loaded.discovered.source.clone(),
            )
        };
        let sandbox = self.sandbox()?;
        let catalog = sandbox
            .ctx
            .catalog(CATALOG)
            .ok_or_else(|| Error::internal("default catalog missing in sandbox"))?;
        let landed = catalog
            .schema(&source)
            .ok_or_else(|| Error::internal(format!("schema {source} missing")))?;
        let alone: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
        for name in landed.table_names() {
            if name != replaced {
                if let Ok(Some(provider)) = landed.table(&name).await {
                    alone.register_table(name, provider)?;
                }
            }
        }
        let only = self.listing_of(std::slice::from_ref(file), schema)?;
        alone.register_table(replaced, only)?;
        catalog.register_schema(&source, alone)?;
        for view in &views {
            // A view that does not plan here does not plan when served either.
            let _ = sandbox.add_view(&view.name, &view.sql).await;
        }
        let rows = sandbox
            .plan(&format!("SELECT {column} FROM {relation}"))
            .await?;
        if !grows_with_inputs(&rows) || scans_of(&rows, table) != 1 {
            return Ok(None);
        }
        let sql = format!("SELECT min({column}) AS low, max({column}) AS high FROM {relation}");
        let plan = sandbox.plan(&sql).await?;
        let batches = self.collect_plan_in(sandbox.ctx.clone(), plan).await?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(Some(NOWHERE));
        };
        match (micros(batch.column(0)), micros(batch.column(1))) {
            (Some(Some(low)), Some(Some(high))) => Ok(Some((low, high))),
            (Some(None), Some(None)) => Ok(Some(NOWHERE)),
            _ => Ok(None),
        }
    }
}

impl Engine {
    /// A landed table's rows in `files` alone (some of its listed files, a few landed ones),
    /// with the table's schema, planned as one partition in this process. `None` for a table
    /// not landed or partitioned (its partition columns live in the paths).
    pub(crate) async fn files_frame(
        &self,
        table: &str,
        files: &[ObjectMeta],
    ) -> Result<Option<datafusion::dataframe::DataFrame>> {
        let schema = {
            let state = self.inner.catalog.lock().await;
            match state.tables.get(table) {
                Some(loaded) if loaded.discovered.partition_cols.is_empty() => {
                    Arc::clone(&loaded.schema)
                }
                _ => return Ok(None),
            }
        };
        let provider = self.listing_of(files, schema)?;
        Ok(Some(self.inner.narrow.read_table(provider)?))
    }

    /// A table over exactly `files` (Parquet) with `schema`.
    fn listing_of(
        &self,
        files: &[ObjectMeta],
        schema: arrow::datatypes::SchemaRef,
    ) -> Result<Arc<ListingTable>> {
        let urls = files
            .iter()
            .map(|file| {
                ListingTableUrl::parse(format!("{}/{}", self.inner.url_base, file.location))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let options = ListingOptions::new(Arc::new(super::schema::parquet_format()))
            .with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        Ok(Arc::new(
            ListingTable::try_new(config)?.with_cache(self.file_statistics()),
        ))
    }
}

/// Whether every operator of `plan` keeps each input row's contribution (see the module doc).
fn grows_with_inputs(plan: &LogicalPlan) -> bool {
    let mut grows = true;
    let _ = plan.apply(|node| {
        let kept = match node {
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Distinct(Distinct::All(_))
            | LogicalPlan::Union(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::Repartition(_) => true,
            LogicalPlan::Sort(sort) => sort.fetch.is_none(),
            LogicalPlan::Join(join) => !matches!(
                join.join_type,
                JoinType::LeftAnti | JoinType::RightAnti | JoinType::LeftMark | JoinType::RightMark
            ),
            _ => false,
        };
        let subquery = node
            .expressions()
            .iter()
            .any(|expr| expr.exists(|e| Ok(is_subquery(e))).unwrap_or(true));
        grows = kept && !subquery;
        Ok(if grows {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    grows
}

fn is_subquery(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
    )
}

/// How many times `plan` scans the landed `table`.
fn scans_of(plan: &LogicalPlan, table: &str) -> usize {
    let mut scans = 0;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if scan.table_name.to_string() == table {
                scans += 1;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans
}

/// The one value of a time array as UTC microseconds (dates at UTC midnight): `Some(None)` for
/// null, `None` for a type that is not a time.
fn micros(array: &dyn Array) -> Option<Option<i64>> {
    if array.is_empty() || array.is_null(0) {
        return Some(None);
    }
    let (multiply, divide) = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => (1_000_000, 1),
        DataType::Timestamp(TimeUnit::Millisecond, _) => (1_000, 1),
        DataType::Timestamp(TimeUnit::Microsecond, _) => (1, 1),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (1, 1_000),
        DataType::Date32 => (86_400_000_000, 1),
        DataType::Date64 => (1_000, 1),
        _ => return None,
    };
    let ints = arrow::compute::cast(array, &DataType::Int64).ok()?;
    let value = ints.as_primitive::<Int64Type>().value(0);
    Some(Some(value.saturating_mul(multiply).div_euclid(divide)))
}
