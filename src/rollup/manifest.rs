//! The rollup store's files: data files (Parquet) and manifest deltas (JSON) under the root.
//!
//! ```text
//! <root>/v1/data/<piece>/<id>.parquet     partitions of one piece computed together
//! <root>/v1/manifest/<time>-<id>.json      entries written after their data file
//! ```
//!
//! Every object is written once with a create-only put under a fresh name, data first and the
//! manifest delta last: a build killed half-way leaves at most an unreferenced data file, and
//! two processes building at once each add their own deltas (identical partitions twice is
//! harmless: they hold the same numbers). Readers take the union of all deltas.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// Store format version (part of every path and of every piece key): change it whenever the
/// file layout or the way keys are computed changes, so an older store is never read as current.
pub const VERSION: &str = "v1";

/// One partition: a piece's exact answer for one bucket over one set of input files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Piece key (what is computed: relation, measure, filter, grouping, definitions).
    pub piece: String,
    /// Bucket (`2026-11-02..2026-11-09@<start µs>..<end µs>`, or `all` for a whole query).
    pub bucket: String,
    /// Hash of the input files that can affect the bucket.
    pub fingerprint: String,
    /// Data file, relative to the root.
    pub file: String,
    /// SHA-256 of the data file (a file that does not match is rebuilt, never served).
    pub sha256: String,
    /// Rows of this bucket in the file.
    pub rows: u64,
}

/// What a piece is, in words, for `kpi rollups status` and `prune`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceInfo {
    /// `aggregate` or `query`.
    pub kind: String,
    /// `relation|measure|filter|time column` of an aggregate (what a metric definition names),
    /// empty for a query.
    #[serde(default)]
    pub signature: String,
    /// The relation (`reporting.sessions`) or the SQL of a query.
    pub relation: String,
    /// Measure, filter, time column and grouping, as text.
    pub detail: String,
    /// The SQL of every view read, by name.
    pub views: BTreeMap<String, String>,
}

/// One input file of a partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InputFile {
    /// Table (`crm.contacts`).
    pub table: String,
    /// Object path.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Modification time, µs since the epoch.
    pub modified: i64,
}

/// One manifest delta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Pieces described by this delta.
    pub pieces: BTreeMap<String, PieceInfo>,
    /// Input files by fingerprint.
    pub inputs: BTreeMap<String, Vec<InputFile>>,
    /// Partitions.
    pub entries: Vec<Entry>,
    /// Reach of joined tables' files (see `engine::reach`), by relation and table
    /// (`reach_key`), then by file ([`super::file_id`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reach: BTreeMap<String, BTreeMap<String, crate::engine::Reach>>,
}

/// An entry's identity: piece, bucket, fingerprint and data file.
type EntryId = (String, String, String, String);

fn entry_id(entry: &Entry) -> EntryId {
    (
        entry.piece.clone(),
        entry.bucket.clone(),
        entry.fingerprint.clone(),
        entry.file.clone(),
    )
}

/// Every delta read, as one, with each entry's identity kept so that adding a delta costs its
/// own size, not the size of everything read before (a report stores a delta per piece it
/// computes).
#[derive(Debug, Clone, Default)]
pub struct Merged {
    delta: Delta,
    seen: HashSet<EntryId>,
}

impl Merged {
    /// The merged content.
    pub fn delta(&self) -> &Delta {
        &self.delta
    }

    /// Recorded reach (see [`Delta::reach`]), for adding to in place.
    pub fn reach_mut(&mut self) -> &mut BTreeMap<String, BTreeMap<String, crate::engine::Reach>> {
        &mut self.delta.reach
    }

    /// Adds a delta's content. An entry already present is not added again: two processes that
    /// merge the manifest at once each write every entry, and a reader of both merged manifests
    /// must not double them (nor the next merge double them again).
    pub fn add(&mut self, other: Delta) {
        self.delta.pieces.extend(other.pieces);
        self.delta.inputs.extend(other.inputs);
        // The first reach recorded for a file stays: every recorded reach is exact, so two
        // processes recording a file differently (one before, one after its relation's first
        // build) only differ in how much they recompute.
        for (key, files) in other.reach {
            let known = self.delta.reach.entry(key).or_default();
            for (file, reach) in files {
                known.entry(file).or_insert(reach);
            }
        }
        for entry in other.entries {
            if self.seen.insert(entry_id(&entry)) {
                self.delta.entries.push(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(piece: &str) -> Entry {
        Entry {
            piece: piece.into(),
            bucket: "all".into(),
            fingerprint: "f".into(),
            file: "d.parquet".into(),
            sha256: "s".into(),
            rows: 1,
        }
    }

    #[test]
    fn merging_the_same_entries_twice_keeps_one_of_each() {
        let one = Delta {
            entries: vec![entry("a"), entry("b")],
            ..Delta::default()
        };
        let mut merged = Merged::default();
        merged.add(one.clone());
        merged.add(one);
        merged.add(Delta {
            entries: vec![entry("c")],
            ..Delta::default()
        });
        let pieces: Vec<&str> = merged
            .delta()
            .entries
            .iter()
            .map(|e| e.piece.as_str())
            .collect();
        assert_eq!(pieces, ["a", "b", "c"]);
    }
}
