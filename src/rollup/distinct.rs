//! A table's distinct rows per month, extended from what is stored when files land.
//!
//! Data health counts a table's exact duplicates as its rows minus the rows of its distinct view
//! (`SELECT DISTINCT *`), per calendar month of a time column of the table (see
//! [`Rollups::duplicates`]). A month's partition is keyed by every file whose rows can fall in
//! it, so a day landing in the month misses it, and counting it again de-duplicates the whole
//! month (the demo's events: 37,000 rows for 533 new ones).
//!
//! Two rows can only be equal if their times are equal. So when the month's partition is stored
//! for an earlier set of files that the current files include, and no file that landed since has
//! a time range (its footer's exact minimum and maximum) that meets the range of any of those
//! earlier files, no landed row can repeat an earlier row: the month's distinct rows are the
//! stored count plus the distinct rows of the landed files alone, in that month. That count is
//! stored as the month's partition for the current files, like any computed one. Anything else
//! (a landed file overlapping an earlier one in time, a removed or replaced file, a file
//! without statistics or with null times, no earlier partition) is counted again from the view,
//! and so is every month with `engine.cluster` (its queries are jobs over the landed tables).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use object_store::ObjectMeta;

use super::{Group, InputFile, Keyed, Prepared, Rollups, Span};
use crate::engine::aggregate::AggregateQuery;
use crate::engine::Engine;
use crate::error::Result;

impl Rollups {
    /// Stores, for each month of `query` (`COUNT(*)` over `table`'s distinct view, placed in
    /// the store as `prepared`) that is missing and can be extended (see the module doc), the
    /// earlier count plus the landed files' distinct rows. Best effort: what it cannot extend,
    /// answering `query` counts. `spans` are the footer spans of `table`'s files, by path.
    pub(super) async fn extend_distinct(
        &self,
        engine: &Engine,
        query: &AggregateQuery,
        prepared: &Prepared,
        table: &str,
        spans: &HashMap<String, Option<Span>>,
    ) -> Result<()> {
        // On a cluster every query is a job over the landed tables, as for windows.
        if engine.config().engine.cluster.is_some() {
            return Ok(());
        }
        let Prepared {
            info,
            piece,
            files,
            keyed,
            ..
        } = prepared;
        let (_, missing) = self.stored_rows(piece, keyed).await;
        let listed = files.get(table).map(Vec::as_slice).unwrap_or(&[]);
        let mut parts: Vec<(usize, Vec<Group>)> = Vec::new();
        for index in missing {
            let key = &keyed[index];
            let Some((earlier, landed)) = self.earlier_partition(piece, key).await else {
                continue;
            };
            let time_range = |path: &str| match spans.get(path) {
                Some(Some((low, high, 0, _))) => Some((*low, *high)),
                _ => None,
            };
            let ranges = |paths: &mut dyn Iterator<Item = &str>| {
                paths.map(time_range).collect::<Option<Vec<_>>>()
            };
            let (Some(before), Some(after)) = (
                ranges(&mut earlier.inputs.iter().map(|input| input.path.as_str())),
                ranges(&mut landed.iter().map(String::as_str)),
            ) else {
                continue;
            };
            let apart = after
                .iter()
                .all(|(low, high)| before.iter().all(|(l, h)| high < l || low > h));
            let landed_files: Vec<ObjectMeta> = listed
                .iter()
                .filter(|meta| landed.contains(&meta.location.to_string()))
                .cloned()
                .collect();
            if !apart || landed_files.len() != landed.len() {
                continue;
            }
            let Some(stored) = self.aggregate_rows(piece, &earlier).await else {
                continue;
            };
            let Some(frame) = engine.files_frame(table, &landed_files).await? else {
                return Ok(());
            };
            let one = AggregateQuery {
                buckets: vec![query.buckets[index]],
                ..query.clone()
            };
            self.counters.queries.fetch_add(1, Ordering::Relaxed);
            let added: f64 = engine
                .aggregate_over(frame.distinct()?, &one)
                .await?
                .iter()
                .filter_map(|row| row.value)
                .sum();
            let before: f64 = stored.iter().filter_map(|(_, value)| *value).sum();
            // As the view answers: one row with the count, none for a month without rows.
            let total = before + added;
            let groups = if total > 0.0 {
                vec![(Vec::new(), Some(total))]
            } else {
                Vec::new()
            };
            parts.push((index, groups));
        }
        if parts.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            "rollups: {} month(s) of {table}'s distinct rows extended by the files landed since",
            parts.len()
        );
        for counter in [&self.counters.computed, &self.counters.extended] {
            counter.fetch_add(parts.len() as u64, Ordering::Relaxed);
        }
        let saved: Vec<_> = parts
            .iter()
            .map(|(index, groups)| (&keyed[*index], groups.as_slice()))
            .collect();
        self.save_aggregate(piece, info, &saved).await
    }

    /// The stored partition of `key`'s bucket of `piece` over the most files that are all
    /// among `key`'s inputs (same path, size and modification time), other than `key`'s own:
    /// its key, and the paths of `key`'s inputs it lacks (the files landed since). `None` when
    /// there is none, or it lacks no file.
    async fn earlier_partition(&self, piece: &str, key: &Keyed) -> Option<(Keyed, Vec<String>)> {
        let index = self.index.lock().await;
        let current: HashSet<&InputFile> = key.inputs.iter().collect();
        let inputs = &index.merged.delta().inputs;
        let mut best: Option<(&String, &Vec<InputFile>)> = None;
        for (stored_piece, bucket, fingerprint) in index.entries.keys() {
            if stored_piece != piece || *bucket != key.bucket || *fingerprint == key.fingerprint {
                continue;
            }
            let Some(files) = inputs.get(fingerprint) else {
                continue;
            };
            let larger = best.is_none_or(|(_, known)| files.len() > known.len());
            if larger && files.iter().all(|file| current.contains(file)) {
                best = Some((fingerprint, files));
            }
        }
        let (fingerprint, files) = best?;
        let had: HashSet<&str> = files.iter().map(|file| file.path.as_str()).collect();
        let landed: Vec<String> = key
            .inputs
            .iter()
            .filter(|input| !had.contains(input.path.as_str()))
            .map(|input| input.path.clone())
            .collect();
        if landed.is_empty() {
            return None;
        }
        let earlier = Keyed {
            bucket: key.bucket.clone(),
            fingerprint: fingerprint.clone(),
            inputs: Arc::new(files.clone()),
        };
        Some((earlier, landed))
    }
}
