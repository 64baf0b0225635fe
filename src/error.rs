//! The crate's one error type, classified by who must act on it.
//!
//! Every fallible path in the library ends in [`Error`]. The class decides the exit code of the
//! CLI and the HTTP status of the server in exactly one place each (`main.rs` and
//! `web::error`); nothing else inspects error text.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The user's input is wrong (SQL, a definition, a flag, configuration); they must fix it.
    Input,
    /// The request names something that does not exist.
    NotFound,
    /// The request lacks valid credentials.
    Unauthorized,
    /// A dependency (storage, a time limit) is unavailable; retrying later may work.
    Unavailable,
    /// A bug or an unexpected failure inside kpi.
    Internal,
}

/// An error with a stable machine-readable code, a message for humans and a class.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    /// Who must act.
    pub class: ErrorClass,
    /// Stable identifier clients can match on, such as `forbidden_statement`.
    pub code: &'static str,
    /// What went wrong, where, and how to fix it.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// Builds an error the user must fix.
    pub fn input(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Input,
            code,
            message: message.into(),
        }
    }

    /// Builds a "does not exist" error.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::NotFound,
            code,
            message: message.into(),
        }
    }

    /// Builds an error for a request without valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Unauthorized,
            code: "unauthorized",
            message: message.into(),
        }
    }

    /// Builds an error for an unavailable dependency or an exceeded limit.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Unavailable,
            code,
            message: message.into(),
        }
    }

    /// Builds an internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Internal,
            code: "internal",
            message: message.into(),
        }
    }

    /// Returns the process exit code the CLI uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self.class {
            ErrorClass::Input | ErrorClass::NotFound | ErrorClass::Unauthorized => 2,
            ErrorClass::Unavailable => 3,
            ErrorClass::Internal => 1,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::unavailable("io", error.to_string())
    }
}

impl From<object_store::Error> for Error {
    fn from(error: object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { path, .. } => {
                Self::not_found("storage_not_found", format!("no object at {path}"))
            }
            other => Self::unavailable("storage", format!("storage error: {other}")),
        }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        // Planning problems are the user's SQL; execution problems are data or limits.
        let message = error.strip_backtrace();
        match error.find_root() {
            E::SQL(..) | E::Plan(..) | E::SchemaError(..) | E::NotImplemented(..) => {
                Self::input("sql_plan", message)
            }
            E::ResourcesExhausted(..) => Self::unavailable(
                "resources_exhausted",
                format!(
                    "{message}. The query needs more memory than the query pool has free: \
                     raise engine.memory_limit_mb (KPI_MEMORY_LIMIT_MB) or narrow the query"
                ),
            ),
            E::IoError(..) if spill_failed(&message) => Self::unavailable(
                "spill_failed",
                format!(
                    "the query needed more memory than the query pool holds and could not \
                     spill to the temporary directory {}: {message}. Set TMPDIR to a writable \
                     directory with room, or raise engine.memory_limit_mb (KPI_MEMORY_LIMIT_MB)",
                    std::env::temp_dir().display()
                ),
            ),
            E::Internal(..) => Self::internal(message),
            _ => Self::unavailable("sql_execution", message),
        }
    }
}

/// Whether an I/O error's message names one of DataFusion's spill files: a path of only
/// `.tmp*` names under the OS temporary directory (`TMPDIR`), where its disk manager creates a
/// directory and the files in it (landed data under a temporary folder has other names).
fn spill_failed(message: &str) -> bool {
    let temp = std::env::temp_dir();
    let prefix = format!("\"{}/", temp.to_string_lossy().trim_end_matches('/'));
    let Some(start) = message.find(&prefix) else {
        return false;
    };
    let rest = &message[start + prefix.len()..];
    let path = rest.split('"').next().unwrap_or_default();
    !path.is_empty() && path.split('/').all(|name| name.starts_with(".tmp"))
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(error: parquet::errors::ParquetError) -> Self {
        Self::unavailable("parquet", error.to_string())
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(error: arrow::error::ArrowError) -> Self {
        Self::internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::spill_failed;

    #[test]
    fn spill_file_errors_are_told_apart_from_data_file_errors() {
        let temp = std::env::temp_dir();
        let temp = temp.to_string_lossy();
        let temp = temp.trim_end_matches('/');
        let spill = format!(
            "IO error: No space left on device (os error 28) at path \"{temp}/.tmpa1B2c3/.tmpZz9\""
        );
        let dir = format!(
            "IO error: No such file or directory (os error 2) at path \"{temp}/.tmplsn1iz\""
        );
        let data = format!("IO error: Permission denied (os error 13) at path \"{temp}/.tmpQ1/analytics/sessions/day.parquet\"");
        assert!(spill_failed(&spill));
        assert!(spill_failed(&dir));
        assert!(!spill_failed(&data));
        assert!(!spill_failed("IO error: connection reset"));
    }
}
