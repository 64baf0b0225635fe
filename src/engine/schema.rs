//! Table schemas: each file's Parquet footer, the one schema a table's files agree on (or
//! why they do not), and a table that answers every scan with that reason.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use object_store::{ObjectMeta, ObjectStore};

use super::discovery::DiscoveredTable;
use super::FileKey;

/// The bytes read from a Parquet file's end to find its footer in one request (a bigger
/// footer takes a second). DataFusion's default, 512 KiB, reads whole files of a few hundred
/// KiB just to learn their schema (the demo's footers are 1-3 KiB): 64 KiB holds the footer
/// of any but very wide or many-row-group files.
const FOOTER_HINT: usize = 64 * 1024;

/// The Parquet format every landed table is read with.
pub(super) fn parquet_format() -> ParquetFormat {
    ParquetFormat::default().with_metadata_size_hint(Some(FOOTER_HINT))
}

/// Reads one file's Parquet footer and returns its Arrow schema.
pub(super) async fn read_file_schema(
    state: &datafusion::execution::SessionState,
    store: Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
) -> std::result::Result<SchemaRef, String> {
    use datafusion::datasource::file_format::FileFormat;
    let format = parquet_format();
    match format
        .infer_schema(state, &store, std::slice::from_ref(meta))
        .await
    {
        Ok(schema) => Ok(schema),
        Err(error) => Err(format!(
            "not readable as Parquet ({})",
            error.strip_backtrace()
        )),
    }
}

/// Picks the schema most files share; describes every file that disagrees or cannot be read.
pub(super) fn consensus_schema(
    table: &DiscoveredTable,
    file_schemas: &HashMap<FileKey, std::result::Result<SchemaRef, String>>,
    root: &str,
) -> (SchemaRef, Option<String>) {
    let relative = |meta: &ObjectMeta| {
        let path = meta.location.as_ref();
        path.strip_prefix(root)
            .unwrap_or(path)
            .trim_start_matches('/')
            .to_string()
    };
    let mut groups: Vec<(String, SchemaRef, Vec<String>)> = Vec::new();
    let mut unreadable = Vec::new();
    for meta in &table.files {
        match file_schemas.get(&FileKey::of(meta)) {
            Some(Ok(schema)) => {
                let schema = normalize_schema(schema);
                let signature = schema_signature(&schema);
                match groups.iter_mut().find(|(sig, _, _)| *sig == signature) {
                    Some((_, _, files)) => files.push(relative(meta)),
                    None => groups.push((signature, schema, vec![relative(meta)])),
                }
            }
            Some(Err(error)) => unreadable.push(format!("`{}` is {error}", relative(meta))),
            None => unreadable.push(format!("`{}` was not inspected", relative(meta))),
        }
    }
    groups.sort_by_key(|group| std::cmp::Reverse(group.2.len()));
    let schema = groups
        .first()
        .map(|(_, schema, _)| Arc::clone(schema))
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let mut problems = table.problems.clone();
    problems.extend(unreadable);
    if groups.len() > 1 {
        let describe = |(_, schema, files): &(String, SchemaRef, Vec<String>)| {
            let shown: Vec<&str> = files.iter().take(3).map(String::as_str).collect();
            let more = if files.len() > 3 {
                format!(" and {} more", files.len() - 3)
            } else {
                String::new()
            };
            format!(
                "[{}]{more} have ({})",
                shown.join(", "),
                schema_signature(schema)
            )
        };
        let others: Vec<String> = groups[1..].iter().map(describe).collect();
        problems.push(format!(
            "files disagree on schema: {} but {}; every file of a table needs the same columns and types, so rewrite or remove the odd files",
            describe(&groups[0]),
            others.join("; ")
        ));
    }
    let error = if problems.is_empty() {
        None
    } else {
        Some(format!(
            "table {} is unavailable: {}",
            table.qualified_name(),
            problems.join("; ")
        ))
    };
    (schema, error)
}

/// Drops metadata and makes every column nullable, so writers that differ only there agree.
pub(super) fn normalize_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| Field::new(field.name(), field.data_type().clone(), true))
        .collect();
    Arc::new(Schema::new(fields))
}

pub(super) fn schema_signature(schema: &Schema) -> String {
    let parts: Vec<String> = schema
        .fields()
        .iter()
        .map(|field| format!("{} {}", field.name(), field.data_type()))
        .collect();
    parts.join(", ")
}

/// A table that cannot be read; planning works (its last known schema) and scanning fails with
/// the reason, so one broken table degrades only the queries that read it.
#[derive(Debug)]
pub(super) struct UnavailableTable {
    schema: SchemaRef,
    reason: String,
}

impl UnavailableTable {
    pub(super) fn new(schema: SchemaRef, reason: String) -> Self {
        Self { schema, reason }
    }
}

#[async_trait]
impl TableProvider for UnavailableTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Execution(self.reason.clone()))
    }
}
