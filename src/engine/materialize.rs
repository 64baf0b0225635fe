//! The build session: the same tables and views as the serving session, except that every
//! view doing real work (a `DISTINCT`, a join, an aggregate, a window or a union) is computed
//! once, on first use, and kept in memory for the rest of the data version.
//!
//! Many metrics and health checks read the same de-duplicating views; planned normally, each
//! query runs the view's `SELECT DISTINCT` again. The rollup store computes wide misses (many
//! buckets at once, as in a first build) and whole health queries here; a narrow miss (the
//! week a day landed in) stays in the serving session, where filters reach the Parquet scan
//! and prune files. A view whose rows exceed [`KEEP_BYTES`] is not kept
//! (kept views never hold more than that each): each scan computes it again, as a plain view
//! would.
//!
//! The session is made again whenever data or views change (see `Engine::build_session`),
//! so a kept view never outlives the files it was computed from; the server drops it after
//! each report it computes (`Engine::release_build_session`), so kept views do not stay
//! resident between builds.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

/// A kept view holds at most this many bytes of Arrow arrays.
pub const KEEP_BYTES: usize = 192 * 1024 * 1024;

/// Whether a view's plan does work worth keeping (anything beyond projections and filters).
pub fn worth_keeping(plan: &LogicalPlan) -> bool {
    let mut heavy = false;
    let _ = plan.apply(|node| {
        heavy = matches!(
            node,
            LogicalPlan::Distinct(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Union(_)
        );
        Ok(if heavy {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    heavy
}

/// Bytes of the buffers the batches hold, each buffer counted once (batches cut from one
/// result share their buffers, which `get_array_memory_size` counts once per batch).
fn held_bytes(batches: &[RecordBatch]) -> usize {
    fn visit(data: &arrow::array::ArrayData, seen: &mut HashSet<usize>, total: &mut usize) {
        for buffer in data.buffers() {
            if seen.insert(buffer.data_ptr().as_ptr() as usize) {
                *total += buffer.capacity();
            }
        }
        if let Some(nulls) = data.nulls() {
            let buffer = nulls.buffer();
            if seen.insert(buffer.data_ptr().as_ptr() as usize) {
                *total += buffer.capacity();
            }
        }
        for child in data.child_data() {
            visit(child, seen, total);
        }
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for batch in batches {
        for column in batch.columns() {
            visit(&column.to_data(), &mut seen, &mut total);
        }
    }
    total
}

/// A view computed on first scan and kept (when small enough) for the session's life.
#[derive(Debug)]
pub struct KeptView {
    name: String,
    plan: LogicalPlan,
    schema: SchemaRef,
    rows: tokio::sync::OnceCell<Option<Arc<Vec<RecordBatch>>>>,
}

impl KeptView {
    /// The view `name` with its plan (planned in the build session).
    pub fn new(name: &str, plan: LogicalPlan) -> Self {
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        Self {
            name: name.to_string(),
            plan,
            schema,
            rows: tokio::sync::OnceCell::new(),
        }
    }

    async fn compute(&self, state: &SessionState) -> datafusion::error::Result<Vec<RecordBatch>> {
        let started = std::time::Instant::now();
        let ctx = SessionContext::new_with_state(state.clone());
        let batches = ctx
            .execute_logical_plan(self.plan.clone())
            .await?
            .collect()
            .await?;
        tracing::debug!(
            "build session: view {} computed in {} ms",
            self.name,
            started.elapsed().as_millis()
        );
        Ok(batches)
    }
}

#[async_trait]
impl TableProvider for KeptView {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        // Not `View`: DataFusion must scan this provider, not inline the plan.
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("a kept view needs a SessionState".into()))?;
        let kept = self
            .rows
            .get_or_try_init(|| async {
                let batches = self.compute(state).await?;
                let bytes = held_bytes(&batches);
                Ok::<_, DataFusionError>(if bytes <= KEEP_BYTES {
                    Some(Arc::new(batches))
                } else {
                    tracing::debug!(
                        "build session: view {} is {} MiB, not kept",
                        self.name,
                        bytes / (1024 * 1024)
                    );
                    None
                })
            })
            .await?;
        let batches = match kept {
            Some(batches) => batches.as_ref().clone(),
            None => self.compute(state).await?,
        };
        // Spread over the session's partitions so both cores scan.
        let partitions = state.config().target_partitions().max(1);
        let mut split: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        for (index, batch) in batches.into_iter().enumerate() {
            split[index % partitions].push(batch);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &split,
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}
