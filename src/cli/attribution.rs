//! `kpi attribution`: credits conversions to touches from CSV or Parquet files, streaming.

use std::path::PathBuf;
use std::time::Instant;

use kpi::{attribution, Error, Result};

/// Arguments of `kpi attribution`.
#[derive(Debug, clap::Args)]
pub struct AttributionArgs {
    /// Touches: touch_id, user_id, ts, channel, campaign (CSV or Parquet).
    #[arg(long)]
    pub touches: PathBuf,
    /// Conversions: conversion_id, user_id, ts, revenue (CSV or Parquet).
    #[arg(long)]
    pub conversions: PathBuf,
    /// first_touch, last_touch, last_non_direct, linear, position_based, time_decay, markov, or all.
    #[arg(long, default_value = "linear")]
    pub model: String,
    /// Lookback window before each conversion (inclusive), such as 30d or 12h.
    #[arg(long, default_value = "30d")]
    pub lookback: String,
    /// Half-life of the time_decay model.
    #[arg(long, default_value = "7d")]
    pub half_life: String,
    /// Output file, .csv or .parquet.
    #[arg(long)]
    pub out: PathBuf,
    /// Column names when they differ: KEY=COLUMN, keys touch_id, touch_entity, touch_ts,
    /// channel, campaign, conversion_id, conversion_entity, conversion_ts, revenue.
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Memory (MiB) the inputs may take, held compactly, for the fast in-memory run; larger
    /// inputs are sorted on disk instead (slower, memory bounded).
    #[arg(long, default_value_t = 1024, env = "KPI_ATTRIBUTION_MEMORY_MIB")]
    pub memory_mib: usize,
}

/// Credits conversions to touches from CSV or Parquet files, streaming.
pub async fn run(args: AttributionArgs) -> Result<i32> {
    let AttributionArgs {
        touches,
        conversions,
        model,
        lookback,
        half_life,
        out,
        columns,
        memory_mib,
    } = args;

    let started = Instant::now();
    let bad = |message: String| Error::input("bad_argument", message);
    let lookback_text = lookback.clone();
    let lookback = attribution::parse_duration(&lookback).map_err(bad)?;
    let half_life = attribution::parse_half_life(&half_life).map_err(bad)?;
    let models = if model == "all" {
        attribution::Model::all(half_life)
    } else {
        vec![attribution::Model::parse(&model, half_life).map_err(bad)?]
    };
    let columns = attribution::io::Columns::parse(&columns)?;
    eprintln!(
        "kpi attribution: {} → {} ({}; lookback {lookback_text})",
        touches.display(),
        out.display(),
        models
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let job = attribution::stream::Job {
        touches: &touches,
        conversions: &conversions,
        columns: &columns,
        models: &models,
        lookback,
        out: &out,
        memory_budget: memory_mib.saturating_mul(1024 * 1024),
    };
    let summary = attribution::stream::run(&job).await?;
    if summary.sorted_on_disk {
        eprintln!(
            "the inputs outgrew --memory-mib {memory_mib}: sorted them on disk instead (raise it for the faster in-memory run)"
        );
    }
    eprintln!(
        "read {} touches and {} conversions; wrote {} rows to {} in {:.1}s",
        summary.touches,
        summary.conversions,
        summary.rows,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
