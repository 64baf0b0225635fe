//! What a relation is computed from: every landed table it reads (through views and the
//! attribution table), the views on the way, and, where it can be proven, the one landed column
//! its time column is copied from.
//!
//! DataFusion inlines a view's plan where the view is named (the scan becomes an alias over the
//! view's plan), so views appear here as `reporting.*` aliases, never as scans; the only scans
//! are landed tables and the attribution table, whose inputs are traced through their own plans.
//!
//! The time column is traced through the logical plan only across operators that keep each
//! output row's time equal to the time of the landed row it came from: projections of plain
//! columns, filters, `DISTINCT` over whole rows, sorts without a limit, aliases and joins. Any
//! other operator on the way (an aggregate, a window function, a `UNION`, a `LIMIT`, an
//! expression over the column) ends the trace, and so does a landed table read more than once
//! in the expanded plan: then no column is named and every file of every input counts for
//! every period (always exact, only less incremental).

use std::collections::{BTreeMap, BTreeSet};

use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::TableReference;
use datafusion::datasource::listing::ListingTable;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan};
use datafusion::prelude::SessionContext;

use crate::attribution::table::AttributionTable;
use crate::error::{Error, Result};

/// Error code of a relation that reads something other than landed tables and the attribution
/// table (a table that is unavailable, say): such a relation is never stored.
pub const OPAQUE: &str = "opaque_input";

/// The inputs of one relation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Landed tables read, with how many times each is scanned in the expanded plan.
    pub tables: BTreeMap<String, usize>,
    /// Every view read, by name (views are inlined when planned; their SQL is added by the
    /// caller for `kpi rollups prune`).
    pub views: BTreeMap<String, String>,
    /// The plans read, printed: the piece's definition, whatever SQL text produced it.
    pub plans: Vec<String>,
    /// Identities of attribution tables read (inputs and settings).
    pub attribution: BTreeSet<String>,
    /// `(landed table, column)` the relation's time column is a copy of, when proven.
    pub time: Option<(String, String)>,
}

/// Traces `plan`, whose output has the column `time_column`.
pub async fn trace(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    time_column: Option<&str>,
) -> Result<Lineage> {
    let mut lineage = Lineage::default();
    collect(ctx, plan, &mut lineage, 0).await?;
    if let Some(column) = time_column {
        lineage.time = origin(plan, None, column)
            .filter(|(table, _)| lineage.tables.get(table).copied() == Some(1));
    }
    Ok(lineage)
}

/// Adds every scan of `plan` (and of the views and attribution inputs it reads) to `lineage`.
fn collect<'a>(
    ctx: &'a SessionContext,
    plan: &'a LogicalPlan,
    lineage: &'a mut Lineage,
    depth: usize,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if depth > 32 {
            return Err(Error::internal("views nest more than 32 deep"));
        }
        lineage.plans.push(plan.display_indent().to_string());
        let mut scans = Vec::new();
        let mut views = Vec::new();
        plan.apply_with_subqueries(|node| {
            match node {
                LogicalPlan::TableScan(scan) => {
                    scans.push((scan.table_name.clone(), scan.source.clone()))
                }
                LogicalPlan::SubqueryAlias(alias)
                    if alias.alias.schema() == Some(crate::engine::REPORTING_SCHEMA) =>
                {
                    views.push(alias.alias.to_string())
                }
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        for view in views {
            lineage.views.entry(view).or_default();
        }
        for (name, source) in scans {
            let provider = source_as_provider(&source)?;
            let any: &dyn datafusion::catalog::TableProvider = provider.as_ref();
            if let Some(table) = any.downcast_ref::<AttributionTable>() {
                lineage.attribution.insert(table.key());
                for input in table.inputs() {
                    let frame = ctx.table(TableReference::parse_str(input)).await?;
                    collect(ctx, frame.logical_plan(), lineage, depth + 1).await?;
                }
            } else if any.downcast_ref::<ListingTable>().is_some() {
                *lineage.tables.entry(name.to_string()).or_default() += 1;
            } else {
                return Err(Error::unavailable(
                    OPAQUE,
                    format!("{name} is not a landed table or a view"),
                ));
            }
        }
        Ok(())
    })
}

/// The landed `(table, column)` that output column `name` of `plan` copies, if provable.
fn origin(
    plan: &LogicalPlan,
    qualifier: Option<&TableReference>,
    name: &str,
) -> Option<(String, String)> {
    let index = plan.schema().index_of_column_by_name(qualifier, name)?;
    let input_field = |input: &LogicalPlan, i: usize| {
        let (q, field) = input.schema().qualified_field(i);
        (q.cloned(), field.name().clone())
    };
    match plan {
        LogicalPlan::Projection(projection) => match unalias(projection.expr.get(index)?) {
            Expr::Column(column) => {
                origin(&projection.input, column.relation.as_ref(), &column.name)
            }
            _ => None,
        },
        LogicalPlan::Filter(filter) => origin(&filter.input, qualifier, name),
        LogicalPlan::Sort(sort) if sort.fetch.is_none() => origin(&sort.input, qualifier, name),
        LogicalPlan::Repartition(repartition) => origin(&repartition.input, qualifier, name),
        LogicalPlan::Distinct(Distinct::All(input)) => origin(input, qualifier, name),
        LogicalPlan::SubqueryAlias(alias) => {
            let (q, field) = input_field(&alias.input, index);
            origin(&alias.input, q.as_ref(), &field)
        }
        LogicalPlan::Join(join) => {
            let left_width = join.left.schema().fields().len();
            let side = match join.join_type {
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                    if index < left_width {
                        (&join.left, index)
                    } else {
                        (&join.right, index - left_width)
                    }
                }
                JoinType::LeftSemi | JoinType::LeftAnti => (&join.left, index),
                JoinType::RightSemi | JoinType::RightAnti => (&join.right, index),
                _ => return None,
            };
            let (q, field) = input_field(side.0, side.1);
            origin(side.0, q.as_ref(), &field)
        }
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let any: &dyn datafusion::catalog::TableProvider = provider.as_ref();
            any.downcast_ref::<ListingTable>().map(|_| {
                let (_, field) = input_field(plan, index);
                (scan.table_name.to_string(), field)
            })
        }
        _ => None,
    }
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        other => other,
    }
}
