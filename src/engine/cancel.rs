//! Makes runaway joins cancellable.
//!
//! A query is stopped at its time limit by dropping its task, and a tokio task only notices
//! that at a yield point. DataFusion yields at its leaf scans (`EnsureCooperative`), but a join
//! can turn one probe batch into millions of output rows, and the aggregate above it consumes
//! them in a loop that never yields: the "stopped" query would keep two cores busy for minutes.
//! This rule wraps every join in a [`CooperativeExec`], which spends the task's cooperative
//! budget per output batch, so a cancelled query really stops within a few batches.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::ExecutionPlan;

/// Physical optimizer rule: every join operator yields to the scheduler between batches.
#[derive(Debug, Default)]
pub struct YieldingJoins;

impl PhysicalOptimizerRule for YieldingJoins {
    fn name(&self) -> &str {
        "kpi_yielding_joins"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.name().contains("Join") {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                Ok(Transformed::yes(wrapped))
            } else {
                Ok(Transformed::no(node))
            }
        })
        .map(|transformed| transformed.data)
    }

    fn schema_check(&self) -> bool {
        true
    }
}
