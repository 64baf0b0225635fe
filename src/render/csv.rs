//! CSV text, written by the `csv` crate (RFC 4180 quoting, including fields with `\r`): the
//! one CSV writer behind metric series, report exports and every other CSV kpi returns.

/// Builds one CSV document in memory, row by row.
pub struct CsvText {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvText {
    /// Starts a document with its header row.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
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
        S: AsRef<[u8]>,
    {
        // Writing to memory cannot fail; a row of a different length is allowed (flexible
        // is off only for readers), so the error case is unreachable in practice.
        let _ = self.writer.write_record(cells);
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
    fn numbers_are_written_as_rust_prints_them() {
        assert_eq!(number(Some(1.5)), "1.5");
        assert_eq!(number(Some(3.0)), "3");
        assert_eq!(number(None), "");
    }
}
