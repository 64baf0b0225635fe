//! End-to-end tests: the real binary, the real server over HTTP, DuckDB as the independent
//! engine and a real S3-compatible server (moto). One test binary; helpers in `support`.
//!
//! `scripts/test` installs the Python side (duckdb, moto) into `.venv` and sets
//! `KPI_TEST_PYTHON`; without them these tests fail and say how to fix it, never skip.

#[path = "suite/support.rs"]
mod support;

#[path = "suite/cli.rs"]
mod cli;

#[path = "suite/server.rs"]
mod server;

#[path = "suite/s3.rs"]
mod s3;

#[path = "suite/metrics.rs"]
mod metrics;

#[path = "suite/attribution.rs"]
mod attribution;

#[path = "suite/reports.rs"]
mod reports;

#[path = "suite/email.rs"]
mod email;

#[path = "suite/access.rs"]
mod access;

#[path = "suite/hostile.rs"]
mod hostile;

#[path = "suite/rollups.rs"]
mod rollups;

#[path = "suite/judging.rs"]
mod judging;

#[path = "suite/alerts.rs"]
mod alerts;

#[path = "suite/load.rs"]
mod load;

#[cfg(feature = "cluster")]
#[path = "suite/cluster.rs"]
mod cluster;
