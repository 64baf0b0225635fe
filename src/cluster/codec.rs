//! kpi's extension codecs: how the attribution table crosses from the client to the scheduler
//! (a table provider in the logical plan) and from the scheduler to an executor (an execution
//! plan). Everything else is Ballista's own codec.
//!
//! On the wire the table is its inputs and settings, never its credits: the scheduler plans
//! an [`AttributionExec`] without computing anything, and the executor that runs it computes
//! the credits with its own engine over the project's views ([`super::roles::Role`]), once per
//! data version, as `kpi serve` does.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use super::roles::Role;
use crate::attribution::table::{schema, AttributionTable};
use crate::attribution::{Model, Settings};

type DfResult<T> = datafusion::error::Result<T>;

/// First bytes of an encoded attribution table.
const TABLE_TAG: &str = "kpi.attribution.table";
/// First bytes of an encoded attribution execution plan.
const EXEC_TAG: &str = "kpi.attribution.exec";

/// The attribution table as it travels: its inputs and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Wire {
    /// The touches relation (`reporting.touches`).
    pub touches: String,
    /// The conversions relation.
    pub conversions: String,
    /// Model and lookback.
    pub settings: Settings,
}

impl Wire {
    fn of(table: &AttributionTable) -> Self {
        let [touches, conversions] = table.inputs();
        Self {
            touches: touches.to_string(),
            conversions: conversions.to_string(),
            settings: table.settings(),
        }
    }

    /// One line per field after the tag: inputs, model, lookback and half-life in seconds,
    /// then the projected columns (for an execution plan).
    fn encode(&self, tag: &str, projection: Option<&Vec<usize>>) -> Vec<u8> {
        let half_life = match self.settings.model {
            Model::TimeDecay { half_life } => half_life.num_seconds(),
            _ => 0,
        };
        let projection = projection.map(|columns| {
            columns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        });
        format!(
            "{tag}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.touches,
            self.conversions,
            self.settings.model.name(),
            self.settings.lookback.num_seconds(),
            half_life,
            projection.as_deref().unwrap_or("*")
        )
        .into_bytes()
    }

    /// The fields after `tag`, or `None` when `buf` is not this kind of node.
    fn decode(tag: &str, buf: &[u8]) -> Option<DfResult<(Self, Option<Vec<usize>>)>> {
        let text = std::str::from_utf8(buf).ok()?;
        let mut lines = text.strip_prefix(tag)?.strip_prefix('\n')?.split('\n');
        let mut next = || {
            lines
                .next()
                .ok_or_else(|| DataFusionError::Internal(format!("truncated {tag} node: `{text}`")))
        };
        let decoded = (|| {
            let touches = next()?.to_string();
            let conversions = next()?.to_string();
            let model = next()?.to_string();
            let seconds = |text: &str| {
                text.parse::<i64>()
                    .map(chrono::Duration::seconds)
                    .map_err(|_| {
                        DataFusionError::Internal(format!("bad duration `{text}` in a {tag} node"))
                    })
            };
            let lookback = seconds(next()?)?;
            let half_life = seconds(next()?)?;
            let model = Model::parse(&model, half_life).map_err(DataFusionError::Internal)?;
            let projection = match next()? {
                "*" => None,
                "" => Some(Vec::new()),
                list => Some(
                    list.split(',')
                        .map(|index| {
                            index.parse::<usize>().map_err(|_| {
                                DataFusionError::Internal(format!("bad column `{index}`"))
                            })
                        })
                        .collect::<DfResult<Vec<_>>>()?,
                ),
            };
            Ok((
                Self {
                    touches,
                    conversions,
                    settings: Settings { model, lookback },
                },
                projection,
            ))
        })();
        Some(decoded)
    }
}

/// The logical codec: Ballista's, plus the attribution table.
#[derive(Debug)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
    role: Option<Arc<Role>>,
}

impl LogicalCodec {
    /// The codec of a client (`kpi serve`, `kpi query` with `engine.cluster`).
    pub fn client() -> Self {
        Self {
            inner: BallistaLogicalExtensionCodec::default(),
            role: None,
        }
    }

    /// The codec of a role process, whose decoded tables plan on `role`.
    pub fn for_role(role: Option<Arc<Role>>) -> Self {
        Self {
            inner: BallistaLogicalExtensionCodec::default(),
            role,
        }
    }
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match Wire::decode(TABLE_TAG, buf) {
            Some(decoded) => Ok(Arc::new(ClusterAttribution {
                wire: decoded?.0,
                role: self.role.clone(),
            })),
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let any: &dyn TableProvider = node.as_ref();
        if let Some(table) = any.downcast_ref::<AttributionTable>() {
            buf.extend(Wire::of(table).encode(TABLE_TAG, None));
            return Ok(());
        }
        if let Some(table) = any.downcast_ref::<ClusterAttribution>() {
            buf.extend(table.wire.encode(TABLE_TAG, None));
            return Ok(());
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> DfResult<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// The physical codec: Ballista's, plus [`AttributionExec`].
#[derive(Debug)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
    role: Option<Arc<Role>>,
}

impl PhysicalCodec {
    /// The codec of a client.
    pub fn client() -> Self {
        Self::for_role(None)
    }

    /// The codec of a role process; an executor's runs attribution plans on `role`.
    pub fn for_role(role: Option<Arc<Role>>) -> Self {
        Self {
            inner: BallistaPhysicalExtensionCodec::default(),
            role,
        }
    }
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match Wire::decode(EXEC_TAG, buf) {
            Some(decoded) => {
                let (wire, projection) = decoded?;
                Ok(Arc::new(AttributionExec::new(
                    wire,
                    projection,
                    self.role.clone(),
                )?))
            }
            None => self.inner.try_decode(buf, inputs, ctx, proto_converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if let Some(exec) = node.downcast_ref::<AttributionExec>() {
            buf.extend(exec.wire.encode(EXEC_TAG, exec.projection.as_ref()));
            return Ok(());
        }
        self.inner.try_encode(node, buf, proto_converter)
    }
}

/// The attribution table as a role decodes it: scanning it plans an [`AttributionExec`].
#[derive(Debug)]
pub struct ClusterAttribution {
    wire: Wire,
    role: Option<Arc<Role>>,
}

#[async_trait]
impl TableProvider for ClusterAttribution {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(AttributionExec::new(
            self.wire.clone(),
            projection.cloned(),
            self.role.clone(),
        )?))
    }
}

/// Computes the credits of one model and lookback where it runs (one partition), with that
/// process's engine.
#[derive(Debug)]
pub struct AttributionExec {
    wire: Wire,
    projection: Option<Vec<usize>>,
    role: Option<Arc<Role>>,
    properties: Arc<PlanProperties>,
}

impl AttributionExec {
    fn new(wire: Wire, projection: Option<Vec<usize>>, role: Option<Arc<Role>>) -> DfResult<Self> {
        let full = schema();
        let projected = match &projection {
            Some(columns) => Arc::new(full.project(columns)?),
            None => full,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            wire,
            projection,
            role,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for AttributionExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "AttributionExec: {}", self.wire.settings.label())
    }
}

impl ExecutionPlan for AttributionExec {
    fn name(&self) -> &str {
        "AttributionExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let role = self.role.clone().ok_or_else(|| {
            DataFusionError::Execution(
                "attribution credits are computed by kpi's executors (`kpi cluster executor`, \
                 started in the project folder); this process is not one"
                    .into(),
            )
        })?;
        let wire = self.wire.clone();
        let projection = self.projection.clone();
        let schema = self.schema();
        let batches = futures::stream::once(async move {
            let credits = role
                .credits(&wire)
                .await
                .map_err(|error| DataFusionError::Execution(error.message))?;
            let projected = credits
                .iter()
                .map(|batch| match &projection {
                    Some(columns) => batch.project(columns).map_err(DataFusionError::from),
                    None => Ok(batch.clone()),
                })
                .collect::<Vec<_>>();
            Ok::<_, DataFusionError>(futures::stream::iter(projected))
        });
        use futures::StreamExt;
        let flat = batches.flat_map(|result| match result {
            Ok(stream) => stream.left_stream(),
            Err(error) => futures::stream::iter(vec![Err(error)]).right_stream(),
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, flat)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_and_projection_survive_the_wire() {
        let wire = Wire {
            touches: "reporting.touches".into(),
            conversions: "reporting.conversions".into(),
            settings: Settings {
                model: Model::TimeDecay {
                    half_life: chrono::Duration::days(7),
                },
                lookback: chrono::Duration::days(30),
            },
        };
        let bytes = wire.encode(EXEC_TAG, Some(&vec![0, 6, 8]));
        let (back, projection) = Wire::decode(EXEC_TAG, &bytes)
            .expect("an exec node")
            .expect("decodes");
        assert_eq!(back, wire);
        assert_eq!(projection, Some(vec![0, 6, 8]));
        assert!(Wire::decode(TABLE_TAG, &bytes).is_none());
        let markov = Wire {
            settings: Settings {
                model: Model::Markov,
                lookback: chrono::Duration::days(60),
            },
            ..wire
        };
        let bytes = markov.encode(TABLE_TAG, None);
        let (back, projection) = Wire::decode(TABLE_TAG, &bytes)
            .expect("a table node")
            .expect("decodes");
        assert_eq!(back, markov);
        assert_eq!(projection, None);
        assert!(Wire::decode(TABLE_TAG, b"kpi.attribution.table\nonly").is_some_and(|r| r.is_err()));
    }
}
