//! Reading the project's definition files from disk, sorted, with a content fingerprint.
//! Owns file discovery only: no parsing, no validation.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Diagnostic, DASHBOARDS_DIR, METRICS_DIR, QUERIES_DIR};
use crate::digest::hex;

/// One definition file's text, with its project-relative path.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the project folder.
    pub path: PathBuf,
    /// Content.
    pub text: String,
}

/// Reads every definition file of the project (sorted, so results do not depend on the OS).
pub fn read_files(project_dir: &Path) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (dir, extension) in [
        (METRICS_DIR, "toml"),
        (QUERIES_DIR, "sql"),
        (DASHBOARDS_DIR, "toml"),
    ] {
        let folder = project_dir.join(dir);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == extension))
            .collect();
        paths.sort();
        for path in paths {
            let relative = PathBuf::from(dir).join(path.file_name().unwrap_or_default());
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push(SourceFile {
                    path: relative,
                    text,
                }),
                Err(error) => problems.push(Diagnostic::new(
                    relative,
                    1,
                    format!("cannot read file: {error}"),
                )),
            }
        }
    }
    (files, problems)
}

/// Returns a hash of all definition files' names and contents (for change detection).
pub fn fingerprint(project_dir: &Path) -> String {
    let (files, problems) = read_files(project_dir);
    let mut hasher = Sha256::new();
    for file in &files {
        hasher.update(file.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(file.text.as_bytes());
        hasher.update([0]);
    }
    for problem in &problems {
        hasher.update(problem.to_string().as_bytes());
    }
    hex(&hasher.finalize()[..8])
}
