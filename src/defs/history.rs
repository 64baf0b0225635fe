//! The history of metric definitions: every (metric, hash) the server has served, with when it
//! was first seen and the git commit of the project at that time.
//!
//! Stored as JSON lines under `<project>/.kpi/definition-history.jsonl`, rewritten atomically
//! (temporary file, then rename) when something new is seen, so a crash never leaves half a
//! line. A line that cannot be read is skipped with a warning, never fatal.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};

use super::Registry;
use crate::error::Result;

/// One definition version of one metric.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// Metric name.
    pub metric: String,
    /// Definition hash.
    pub hash: String,
    /// When this server first served it.
    pub first_seen: DateTime<Utc>,
    /// Git commit of the project then, when it is a git checkout.
    pub commit: Option<String>,
}

/// The recorded history.
#[derive(Debug, Clone, Default)]
pub struct History {
    path: PathBuf,
    entries: Vec<HistoryEntry>,
}

impl History {
    /// Opens the history file of a project (empty when absent).
    pub fn open(project_dir: &Path) -> Self {
        let path = project_dir.join(".kpi").join("definition-history.jsonl");
        let mut entries = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for (index, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                match serde_json::from_str(line) {
                    Ok(entry) => entries.push(entry),
                    Err(error) => tracing::warn!(
                        "{}:{}: skipped unreadable history line: {error}",
                        path.display(),
                        index + 1
                    ),
                }
            }
        }
        Self { path, entries }
    }

    /// Records every metric version of `registry` not seen before; returns how many were new.
    pub fn record(
        &mut self,
        registry: &Registry,
        now: DateTime<Utc>,
        commit: Option<String>,
    ) -> Result<usize> {
        let mut added = 0;
        for metric in registry.metrics.values() {
            let seen = self
                .entries
                .iter()
                .any(|e| e.metric == metric.name && e.hash == metric.hash);
            if !seen {
                self.entries.push(HistoryEntry {
                    metric: metric.name.clone(),
                    hash: metric.hash.clone(),
                    first_seen: now,
                    commit: commit.clone(),
                });
                added += 1;
            }
        }
        if added > 0 {
            self.save()?;
        }
        Ok(added)
    }

    fn save(&self) -> Result<()> {
        let folder = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        std::fs::create_dir_all(&folder)?;
        let temporary = folder.join(format!(
            ".definition-history.jsonl.tmp-{}",
            std::process::id()
        ));
        let mut text = String::new();
        for entry in &self.entries {
            text.push_str(
                &serde_json::to_string(entry).map_err(|e| crate::Error::internal(e.to_string()))?,
            );
            text.push('\n');
        }
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, &self.path)?;
        Ok(())
    }

    /// Returns the versions of one metric, oldest first.
    pub fn for_metric(&self, name: &str) -> Vec<HistoryEntry> {
        let mut entries: Vec<HistoryEntry> = self
            .entries
            .iter()
            .filter(|e| e.metric == name)
            .cloned()
            .collect();
        entries.sort_by_key(|entry| entry.first_seen);
        entries
    }
}

/// Returns the project's current git commit, when it is a git checkout.
pub fn git_commit(project_dir: &Path) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(project_dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
}
