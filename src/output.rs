//! Query results as text: an aligned table for terminals, CSV and JSON for programs.
//!
//! Used by `kpi query` and the SQL endpoint alike so both print the same values.

use arrow::record_batch::RecordBatch;

use crate::engine::QueryOutput;
use crate::error::{Error, Result};

/// Output formats of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned text table.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// Renders `output` in `format`.
pub fn render(output: &QueryOutput, format: Format) -> Result<String> {
    match format {
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&non_empty(output))?;
            Ok(format!("{table}\n"))
        }
        Format::Csv => to_csv(&output.batches, output),
        Format::Json => Ok(to_json_rows(&output.batches)?.to_string()),
    }
}

fn non_empty(output: &QueryOutput) -> Vec<RecordBatch> {
    if output.batches.is_empty() {
        vec![RecordBatch::new_empty(output.schema.clone())]
    } else {
        output.batches.clone()
    }
}

fn to_csv(batches: &[RecordBatch], output: &QueryOutput) -> Result<String> {
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buffer);
        if batches.is_empty() {
            writer.write(&RecordBatch::new_empty(output.schema.clone()))?;
        }
        for batch in batches {
            writer.write(&crate::render::csv::neutralise_batch(batch))?;
        }
    }
    String::from_utf8(buffer).map_err(|error| Error::internal(error.to_string()))
}

/// Converts batches to a JSON array of objects (nulls kept as `null`).
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<serde_json::Value> {
    let mut buffer = Vec::new();
    {
        let builder = arrow::json::WriterBuilder::new().with_explicit_nulls(true);
        let mut writer = builder.build::<_, arrow::json::writer::JsonArray>(&mut buffer);
        for batch in batches {
            writer.write(batch)?;
        }
        writer.finish()?;
    }
    if buffer.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_slice(&buffer).map_err(|error| Error::internal(error.to_string()))
}

/// Writes a file under a temporary name in the same folder, then renames it into place, so a
/// failure never leaves a half-written file.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(Error::unavailable(
            "write_failed",
            format!("cannot write {}: {error}", path.display()),
        ));
    }
    Ok(())
}
