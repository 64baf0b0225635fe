//! Input helpers of `kpi attribution`: column-name mapping, opening CSV or Parquet files as
//! text-friendly DataFrames, and exact parsing of money. The run itself is in `stream.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::error::{Error, Result};

/// Column names of the inputs; defaults are the reference fixtures' names.
#[derive(Debug, Clone)]
pub struct Columns {
    names: BTreeMap<&'static str, String>,
}

const KEYS: [(&str, &str); 9] = [
    ("touch_id", "touch_id"),
    ("touch_entity", "user_id"),
    ("touch_ts", "ts"),
    ("channel", "channel"),
    ("campaign", "campaign"),
    ("conversion_id", "conversion_id"),
    ("conversion_entity", "user_id"),
    ("conversion_ts", "ts"),
    ("revenue", "revenue"),
];

impl Columns {
    /// Applies `KEY=COLUMN` mappings over the defaults.
    pub fn parse(mappings: &[String]) -> Result<Self> {
        let mut names: BTreeMap<&'static str, String> =
            KEYS.iter().map(|(k, v)| (*k, v.to_string())).collect();
        for mapping in mappings
            .iter()
            .flat_map(|m| m.split(','))
            .filter(|m| !m.is_empty())
        {
            let (key, column) = mapping.split_once('=').ok_or_else(|| {
                Error::input(
                    "bad_columns",
                    format!("`{mapping}` must be KEY=COLUMN, such as touch_entity=contact_id"),
                )
            })?;
            let Some((known, _)) = KEYS.iter().find(|(k, _)| *k == key.trim()) else {
                let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                return Err(Error::input(
                    "bad_columns",
                    format!("unknown column key `{key}`; use one of {}", keys.join(", ")),
                ));
            };
            names.insert(known, column.trim().to_string());
        }
        Ok(Self { names })
    }

    pub(crate) fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.names.get(key).map(String::as_str).unwrap_or(key)
    }
}

/// Opens a CSV (every column as text, so timestamps keep their offsets and ids their leading
/// zeros) or Parquet file as a DataFrame.
pub(crate) async fn open_frame(
    ctx: &SessionContext,
    path: &Path,
) -> Result<datafusion::dataframe::DataFrame> {
    use std::io::BufRead;
    let display = path.display().to_string();
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::input("unreadable_input", format!("{display}: {e}")))?;
            let mut header = String::new();
            std::io::BufReader::new(file)
                .read_line(&mut header)
                .map_err(|e| Error::input("unreadable_input", format!("{display}: {e}")))?;
            let fields: Vec<Field> = header
                .trim_end()
                .split(',')
                .map(|name| Field::new(name.trim().trim_matches('"'), DataType::Utf8, true))
                .collect();
            let schema = Schema::new(fields);
            Ok(ctx
                .read_csv(
                    &display,
                    CsvReadOptions::new().has_header(true).schema(&schema),
                )
                .await?)
        }
        Some("parquet") => Ok(ctx
            .read_parquet(&display, ParquetReadOptions::default())
            .await?),
        _ => Err(Error::input(
            "bad_input",
            format!("{display}: use a .csv or .parquet file"),
        )),
    }
}

/// Parses an amount such as `9.99`, `-3`, `1e3` into cents, exactly for up to 2 decimals.
pub fn parse_cents(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some((whole, fraction)) = text.split_once('.') {
        if fraction.len() <= 2
            && fraction.chars().all(|c| c.is_ascii_digit())
            && !whole.contains(['e', 'E'])
        {
            let negative = whole.starts_with('-');
            let whole: i64 = whole
                .trim_start_matches(['-', '+'])
                .parse()
                .ok()
                .or(Some(0).filter(|_| whole.trim_start_matches(['-', '+']).is_empty()))?;
            let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
            let cents = whole * 100 + fraction;
            return Some(if negative { -cents } else { cents });
        }
    }
    let value: f64 = text.parse().ok()?;
    value.is_finite().then(|| (value * 100.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_to_exact_cents() {
        assert_eq!(parse_cents("9.99"), Some(999));
        assert_eq!(parse_cents("100"), Some(10_000));
        assert_eq!(parse_cents("0.1"), Some(10));
        assert_eq!(parse_cents("-3.50"), Some(-350));
        assert_eq!(parse_cents(".5"), Some(50));
        assert_eq!(parse_cents("abc"), None);
    }
}
