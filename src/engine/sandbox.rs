//! A scratch session that plans definitions against the landed schemas without touching
//! what the engine serves.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use super::safety;
use crate::error::Result;

/// A scratch session for planning definitions (see [`Engine::sandbox`]).
pub struct Sandbox {
    pub(super) ctx: SessionContext,
    pub(super) reporting: Arc<MemorySchemaProvider>,
    /// The session's state, taken once: tables and views added later are in catalogs it
    /// shares, and a state is a few hundred registered functions to copy per plan otherwise.
    state: SessionState,
    /// The engine's tables epoch when the sandbox was made (see
    /// [`super::Engine::install_planned_views`]).
    pub(super) epoch: u64,
}

impl Sandbox {
    /// A sandbox over `ctx`, whose `reporting` schema is `reporting`.
    pub(super) fn new(
        ctx: SessionContext,
        reporting: Arc<MemorySchemaProvider>,
        epoch: u64,
    ) -> Self {
        let state = ctx.state();
        Self {
            ctx,
            reporting,
            state,
            epoch,
        }
    }

    /// The view `reporting.<name>` added with exactly `sql`, and its schema.
    pub(super) async fn view(
        &self,
        name: &str,
        sql: &str,
    ) -> Option<(Arc<dyn TableProvider>, SchemaRef)> {
        let table = self.reporting.table(name).await.ok()??;
        let view = table.downcast_ref::<ViewTable>()?;
        if view.definition().map(String::as_str) != Some(sql) {
            return None;
        }
        let schema = table.schema();
        Some((table, schema))
    }

    /// Plans `sql` and registers it as the view `reporting.<name>`; returns its schema.
    pub async fn add_view(&self, name: &str, sql: &str) -> Result<SchemaRef> {
        let plan = self.plan(sql).await?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let view = ViewTable::new(plan, Some(sql.to_string()));
        self.reporting
            .register_table(name.to_string(), Arc::new(view))?;
        Ok(schema)
    }

    /// Registers a table (not a view) in the sandbox's `reporting` schema.
    pub fn add_table(&self, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
        self.reporting.register_table(name.to_string(), table)?;
        Ok(())
    }

    /// Plans one read-only query against landed tables and the views added so far.
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan> {
        let statement = safety::check_read_only(sql)?;
        let plan = self.state.statement_to_plan(statement).await?;
        safety::verify_plan(&plan)?;
        Ok(plan)
    }

    /// Returns the tables `sql` reads, as written (`ads.campaign_daily`, `reporting.x`).
    pub fn table_references(&self, sql: &str) -> Result<Vec<String>> {
        let statement = safety::check_read_only(sql)?;
        let (references, _ctes) = self
            .state
            .resolve_table_references(&statement)
            .map(|refs| (refs, ()))?;
        Ok(references
            .iter()
            .map(|reference| reference.to_string())
            .collect())
    }
}
