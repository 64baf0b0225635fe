//! The build session: the same tables and views as the serving session, except that every
//! view doing real work (a `DISTINCT`, a join, an aggregate, a window or a union) is computed
//! once, on first use, and kept in memory for the rest of the data version.
//!
//! Many metrics and health checks read the same de-duplicating views; planned normally, each
//! query runs the view's `SELECT DISTINCT` again. The rollup store computes wide misses (many
//! buckets at once, as in a first build) and whole health queries here; a narrow miss (the
//! week a day landed in), and a wide miss over more landed bytes than one query should hold
//! (computed in runs of buckets), stay in the serving session, where filters reach the Parquet
//! scan and prune files. A view whose rows exceed [`KEEP_BYTES`] is not kept: collecting its
//! rows stops as soon as they pass that size (the rows collected so far are dropped), and each
//! scan streams it again, as a plain view would. A kept view's rows are reserved in the
//! engine's memory pool (the one budget, `engine.memory_limit_mb`) for as long as they are
//! kept: when the pool cannot hold them, the view is not kept either.
//!
//! The same kept rows serve *windows* (`Engine::windowed`): a relation's rows of the periods a
//! narrow miss asks for, computed once in the serving session for every piece missing the same
//! periods of that relation (the pieces of the week a day landed in).
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
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

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

/// Whether a view's rows could fit in [`KEEP_BYTES`], judged from the Parquet bytes of the
/// landed tables it scans (`landed`, by qualified name): Arrow arrays take at least about twice
/// their compressed Parquet size, so a view over more than half the budget is not tried (trying
/// would compute it once only to drop it).
pub fn could_fit(plan: &LogicalPlan, landed: &std::collections::HashMap<String, u64>) -> bool {
    let mut bytes = 0u64;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            bytes += landed
                .get(&scan.table_name.to_string())
                .copied()
                .unwrap_or(0);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    bytes.saturating_mul(2) <= KEEP_BYTES as u64
}

/// Bytes of the buffers batches hold, each buffer counted once (batches cut from one result
/// share their buffers, which `get_array_memory_size` counts once per batch).
#[derive(Default)]
struct HeldBytes {
    seen: HashSet<usize>,
    total: usize,
}

impl HeldBytes {
    fn add(&mut self, batch: &RecordBatch) {
        for column in batch.columns() {
            self.visit(&column.to_data());
        }
    }

    fn visit(&mut self, data: &arrow::array::ArrayData) {
        for buffer in data.buffers() {
            if self.seen.insert(buffer.data_ptr().as_ptr() as usize) {
                self.total += buffer.capacity();
            }
        }
        if let Some(nulls) = data.nulls() {
            let buffer = nulls.buffer();
            if self.seen.insert(buffer.data_ptr().as_ptr() as usize) {
                self.total += buffer.capacity();
            }
        }
        for child in data.child_data() {
            self.visit(child);
        }
    }
}

/// A view computed on first scan and kept (when small enough) for the session's life.
#[derive(Debug)]
pub struct KeptView {
    name: String,
    plan: LogicalPlan,
    schema: SchemaRef,
    rows: tokio::sync::OnceCell<Option<Arc<Kept>>>,
    /// The session the rows are computed in, when not the one that first scans them (a
    /// window is aggregated without the logical optimizer, but read with it).
    compute_in: Option<SessionState>,
}

/// A kept view's rows and their reservation in the memory pool (released with them).
#[derive(Debug)]
struct Kept {
    batches: Vec<RecordBatch>,
    _reservation: MemoryReservation,
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
            compute_in: None,
        }
    }

    /// The view `name` with its plan, computed in `state` whichever session scans it.
    pub fn computed_in(name: &str, plan: LogicalPlan, state: SessionState) -> Self {
        Self {
            compute_in: Some(state),
            ..Self::new(name, plan)
        }
    }

    /// Computes the view, keeping its rows unless they grow past [`KEEP_BYTES`] or past what
    /// the memory pool can reserve: then the rows read so far are dropped at once (never the
    /// whole view in memory) and `None` says every scan computes it again, streaming.
    async fn compute(&self, state: &SessionState) -> datafusion::error::Result<Option<Kept>> {
        let started = std::time::Instant::now();
        let ctx = SessionContext::new_with_state(state.clone());
        let mut stream = ctx
            .execute_logical_plan(self.plan.clone())
            .await?
            .execute_stream()
            .await?;
        let reservation = MemoryConsumer::new(format!("kept view {}", self.name))
            .register(&state.runtime_env().memory_pool);
        let (mut batches, mut held) = (Vec::new(), HeldBytes::default());
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            held.add(&batch);
            let reserved = held.total <= KEEP_BYTES
                && reservation
                    .try_grow(held.total.saturating_sub(reservation.size()))
                    .is_ok();
            if !reserved {
                tracing::debug!(
                    "kept view {}: reached {} MiB, past {} MiB or what the memory \
                     pool has left: not kept (streamed on each scan)",
                    self.name,
                    held.total / (1024 * 1024),
                    KEEP_BYTES / (1024 * 1024)
                );
                return Ok(None);
            }
            batches.push(batch);
        }
        tracing::debug!(
            "kept view {}: computed in {} ms ({} MiB kept)",
            self.name,
            started.elapsed().as_millis(),
            held.total / (1024 * 1024)
        );
        Ok(Some(Kept {
            batches,
            _reservation: reservation,
        }))
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
        let computing = self.compute_in.as_ref().unwrap_or(state);
        let kept = self
            .rows
            .get_or_try_init(|| async {
                Ok::<_, DataFusionError>(self.compute(computing).await?.map(Arc::new))
            })
            .await?;
        let Some(kept) = kept else {
            // Too big to keep: the view's own plan, streamed like a plain view's.
            let mut frame = SessionContext::new_with_state(computing.clone())
                .execute_logical_plan(self.plan.clone())
                .await?;
            if let Some(projection) = projection {
                let names: Vec<String> = projection
                    .iter()
                    .map(|i| self.schema.field(*i).name().clone())
                    .collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                frame = frame.select_columns(&names)?;
            }
            return frame.create_physical_plan().await;
        };
        // Spread over the session's partitions so both cores scan.
        let partitions = state.config().target_partitions().max(1);
        let mut split: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
        for (index, batch) in kept.batches.iter().enumerate() {
            split[index % partitions].push(batch.clone());
        }
        Ok(MemorySourceConfig::try_new_exec(
            &split,
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}
