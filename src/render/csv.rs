//! CSV text, written by the `csv` crate (RFC 4180 quoting, including fields with `\r`): the
//! one CSV writer behind metric series, report exports and every other CSV kpi returns.
//!
//! Formula injection: a text cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage
//! return would run as a formula when the file is opened in a spreadsheet (a campaign named
//! `=HYPERLINK(...)`). Such cells get a leading `'` (OWASP's rule); cells that are numbers
//! (`-12.5`, `1e-3`) stay numbers. [`neutralise_batch`] does the same to Arrow batches written
//! by arrow's CSV writer (`kpi query`, `POST /api/v1/sql`, `kpi attribution`).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;

/// A cell safe to open in a spreadsheet: formula-like text gets a leading `'`.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.parse::<f64>().is_err() {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The batch with every text column neutralised (see [`neutralise`]).
pub fn neutralise_batch(batch: &RecordBatch) -> RecordBatch {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8 => {
                let strings = column.as_string::<i32>();
                if strings
                    .iter()
                    .flatten()
                    .all(|s| matches!(neutralise(s), Cow::Borrowed(_)))
                {
                    return Arc::clone(column);
                }
                let out: StringArray = strings
                    .iter()
                    .map(|s| s.map(|s| neutralise(s).into_owned()))
                    .collect();
                Arc::new(out) as ArrayRef
            }
            _ => Arc::clone(column),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).unwrap_or_else(|_| batch.clone())
}

/// Builds one CSV document in memory, row by row.
pub struct CsvText {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvText {
    /// Starts a document with its header row.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut text = Self {
            writer: csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new()),
        };
        text.row(header);
        text
    }

    /// Appends one row.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|cell| neutralise(cell.as_ref()).into_owned())
            .collect();
        // Writing to memory cannot fail.
        let _ = self.writer.write_record(&cells);
    }

    /// Returns the document.
    pub fn finish(self) -> String {
        let bytes = self.writer.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}

/// Writes an optional number as a CSV cell: empty when there is none.
pub fn number(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed_including_carriage_returns() {
        let mut text = CsvText::new(["a", "b"]);
        text.row(["plain", "with,comma"]);
        text.row(["say \"hi\"", "line\nbreak"]);
        text.row(["carriage\rreturn", ""]);
        assert_eq!(
            text.finish(),
            "a,b\nplain,\"with,comma\"\n\"say \"\"hi\"\"\",\"line\nbreak\"\n\"carriage\rreturn\",\n"
        );
    }

    #[test]
    fn formulas_are_neutralised_and_numbers_stay_numbers() {
        assert_eq!(
            neutralise("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        for risky in ["+1+1", "-cmd", "@SUM(A1)", "\tx", "\rx", "-", "="] {
            assert_eq!(neutralise(risky), format!("'{risky}"), "{risky:?}");
        }
        for safe in ["-12.5", "+3", "1e-3", "-0", "google", "", "a=b"] {
            assert_eq!(neutralise(safe), safe, "{safe:?}");
        }
        let mut text = CsvText::new(["campaign", "spend"]);
        text.row(["=HYPERLINK(\"http://example.invalid\")", "-12.5"]);
        assert_eq!(
            text.finish(),
            "campaign,spend\n\"'=HYPERLINK(\"\"http://example.invalid\"\")\",-12.5\n"
        );
    }

    #[test]
    fn text_columns_of_batches_are_neutralised() {
        use arrow::array::Float64Array;
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("campaign", DataType::Utf8, true),
            Field::new("spend", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("@evil"), None, Some("ok")])),
                Arc::new(Float64Array::from(vec![-1.0, 2.0, 3.0])),
            ],
        )
        .expect("batch");
        let out = neutralise_batch(&batch);
        let campaigns = out.column(0).as_string::<i32>();
        assert_eq!(campaigns.value(0), "'@evil");
        assert!(campaigns.is_null(1));
        assert_eq!(campaigns.value(2), "ok");
        assert_eq!(out.column(1).as_ref(), batch.column(1).as_ref());
    }

    #[test]
    fn numbers_are_written_as_rust_prints_them() {
        assert_eq!(number(Some(1.5)), "1.5");
        assert_eq!(number(Some(3.0)), "3");
        assert_eq!(number(None), "");
    }
}
