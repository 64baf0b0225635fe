//! kpi: a KPI reporting and metric-layer server over landed Parquet.
//!
//! Data flows one way: files → definitions → engine → report → web. Each module's own doc
//! says what it owns and what it must not touch.

pub mod alerts;
pub mod attribution;
pub mod cache;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod defs;
pub mod demo;
pub mod digest;
pub mod email;
pub mod engine;
pub mod error;
pub mod links;
pub mod metrics;
pub mod output;
pub mod render;
pub mod report;
pub mod rollup;
pub mod snapshot;
pub mod telemetry;
pub mod time;
pub mod web;

pub use error::{Error, ErrorClass, Result};
