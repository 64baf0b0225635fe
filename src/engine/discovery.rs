//! Table discovery: a flat listing of the data root → the tables `<source>.<table>`.
//!
//! Pure functions over object metadata, so the layout rules are unit-tested without storage:
//! `<root>/<source>/<table>/[key=value/...]file.parquet` is a file of table `<source>.<table>`;
//! `key=value` folders are Hive partitions and become columns; names starting with `.` or `_`
//! (temporary files of an atomic write, `_SUCCESS` markers) are skipped.

use std::collections::BTreeMap;

use object_store::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::digest::hex;

/// One landed table as found in storage.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredTable {
    /// The source (first folder), the SQL schema.
    pub source: String,
    /// The table (second folder).
    pub name: String,
    /// Hive partition keys, in folder order.
    pub partition_cols: Vec<String>,
    /// Parquet files, sorted by path.
    pub files: Vec<ObjectMeta>,
    /// Problems that make the table unusable (inconsistent partition folders).
    pub problems: Vec<String>,
}

impl DiscoveredTable {
    /// Returns the SQL name `source.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.source, self.name)
    }

    /// Returns a version string that changes whenever a file is added, removed or replaced.
    pub fn data_version(&self) -> String {
        let mut hasher = Sha256::new();
        for file in &self.files {
            hasher.update(file.location.as_ref().as_bytes());
            hasher.update(file.size.to_le_bytes());
            hasher.update(file.last_modified.timestamp_micros().to_le_bytes());
            hasher.update(file.e_tag.as_deref().unwrap_or("").as_bytes());
        }
        hex(&hasher.finalize()[..8])
    }

    /// Returns the total size of the table's files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size).sum()
    }
}

/// A listing entry that does not fit the layout, reported so users can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    /// Path relative to the data root.
    pub path: String,
    /// Why it is not part of any table.
    pub reason: String,
}

/// Groups a recursive listing under `root_prefix` into tables.
pub fn group_tables(
    root_prefix: &str,
    objects: &[ObjectMeta],
) -> (Vec<DiscoveredTable>, Vec<Stray>) {
    let root = root_prefix.trim_matches('/');
    let mut tables: BTreeMap<(String, String), DiscoveredTable> = BTreeMap::new();
    let mut strays = Vec::new();
    for object in objects {
        let full = object.location.as_ref();
        let relative = if root.is_empty() {
            full
        } else {
            match full.strip_prefix(root) {
                Some(rest) => rest.trim_start_matches('/'),
                None => continue,
            }
        };
        let parts: Vec<&str> = relative.split('/').collect();
        let Some(file_name) = parts.last() else {
            continue;
        };
        if parts
            .iter()
            .any(|part| part.starts_with('.') || part.starts_with('_'))
        {
            continue;
        }
        if !file_name.ends_with(".parquet") {
            continue;
        }
        if parts.len() < 3 {
            strays.push(Stray {
                path: relative.to_string(),
                reason: "Parquet files must live in <source>/<table>/ folders".into(),
            });
            continue;
        }
        let (source, name) = (parts[0], parts[1]);
        if !crate::config::is_identifier(source) || !crate::config::is_identifier(name) {
            strays.push(Stray {
                path: relative.to_string(),
                reason: format!(
                    "`{source}/{name}` is not a valid table name; folder names must be lowercase letters, digits and `_`"
                ),
            });
            continue;
        }
        let mut keys = Vec::new();
        let mut bad_folder = None;
        for folder in &parts[2..parts.len() - 1] {
            match folder.split_once('=') {
                Some((key, _)) if crate::config::is_identifier(key) => keys.push(key.to_string()),
                _ => bad_folder = Some(folder.to_string()),
            }
        }
        let table = tables
            .entry((source.to_string(), name.to_string()))
            .or_insert_with(|| DiscoveredTable {
                source: source.to_string(),
                name: name.to_string(),
                partition_cols: keys.clone(),
                files: Vec::new(),
                problems: Vec::new(),
            });
        if let Some(folder) = bad_folder {
            table.problems.push(format!(
                "folder `{folder}` in `{relative}` is not a Hive partition (key=value); move the file up or rename the folder"
            ));
        } else if table.partition_cols != keys {
            table.problems.push(format!(
                "`{relative}` is partitioned by [{}] but other files by [{}]; every file of a table needs the same partition folders",
                keys.join(", "),
                table.partition_cols.join(", ")
            ));
        }
        table.files.push(object.clone());
    }
    let mut tables: Vec<DiscoveredTable> = tables.into_values().collect();
    for table in &mut tables {
        table.files.sort_by(|a, b| a.location.cmp(&b.location));
    }
    (tables, strays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use object_store::path::Path;

    fn meta(path: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(path),
            last_modified: Utc.timestamp_opt(1_700_000_000, 0).single().expect("time"),
            size,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn folders_become_tables_with_partitions() {
        let objects = vec![
            meta("lake/ads/campaign_daily/month=2026-10/part-0.parquet", 10),
            meta("lake/ads/campaign_daily/month=2026-11/part-0.parquet", 20),
            meta("lake/crm/contacts/contacts.parquet", 5),
            meta("lake/crm/contacts/.contacts.parquet.tmp", 5),
            meta("lake/crm/contacts/_SUCCESS", 0),
            meta("lake/readme.parquet", 1),
            meta("other/ads/x/y.parquet", 1),
        ];
        let (tables, strays) = group_tables("lake", &objects);
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].qualified_name(), "ads.campaign_daily");
        assert_eq!(tables[0].partition_cols, vec!["month".to_string()]);
        assert_eq!(tables[0].files.len(), 2);
        assert_eq!(tables[0].total_bytes(), 30);
        assert_eq!(tables[1].qualified_name(), "crm.contacts");
        assert_eq!(tables[1].files.len(), 1);
        assert!(tables.iter().all(|t| t.problems.is_empty()));
        assert_eq!(strays.len(), 1);
        assert_eq!(strays[0].path, "readme.parquet");
    }

    #[test]
    fn inconsistent_partitions_are_problems() {
        let objects = vec![
            meta("ads/t/month=2026-10/a.parquet", 1),
            meta("ads/t/b.parquet", 1),
            meta("ads/t/misc/c.parquet", 1),
        ];
        let (tables, _) = group_tables("", &objects);
        assert_eq!(tables[0].problems.len(), 2, "{:?}", tables[0].problems);
    }

    #[test]
    fn data_version_changes_when_a_file_lands() {
        let one = vec![meta("ads/t/a.parquet", 1)];
        let two = vec![meta("ads/t/a.parquet", 1), meta("ads/t/b.parquet", 1)];
        let (a, _) = group_tables("", &one);
        let (b, _) = group_tables("", &two);
        assert_ne!(a[0].data_version(), b[0].data_version());
        assert_eq!(
            a[0].data_version(),
            group_tables("", &one).0[0].data_version()
        );
    }

    #[test]
    fn bad_names_are_strays() {
        let (tables, strays) = group_tables("", &[meta("Ads/My Table/a.parquet", 1)]);
        assert!(tables.is_empty());
        assert_eq!(strays.len(), 1);
    }
}
