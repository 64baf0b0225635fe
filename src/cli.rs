//! Command-line arguments and the dispatch of each command to the library.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use kpi::config::{Config, Overrides};
use kpi::engine::{Engine, QueryLimits};
use kpi::metrics::{self, MetricService, SeriesRequest};
use kpi::output::{self, Format};
use kpi::time::Grain;
use kpi::{attribution, defs, demo, web, Error, Result};

/// KPI reporting and metric layer over landed Parquet.
#[derive(Debug, Parser)]
#[command(name = "kpi", version, about)]
pub struct Cli {
    /// Project folder holding kpi.toml, metrics/, queries/ and dashboards/.
    #[arg(long, global = true, default_value = ".")]
    project: PathBuf,
    /// Data root: a folder, file:///path or s3://bucket/prefix (overrides kpi.toml).
    #[arg(long, global = true, env = "KPI_DATA")]
    data: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the demo data set as Parquet.
    Demo {
        /// Output folder (default: the project's data root).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Random seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Last day of data, YYYY-MM-DD (default: the last Sunday before today).
        #[arg(long)]
        end: Option<NaiveDate>,
        /// Weeks of history.
        #[arg(long, default_value_t = 64)]
        weeks: u32,
        /// Volume multiplier.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Write into a non-empty folder, replacing the demo tables there.
        #[arg(long)]
        force: bool,
    },
    /// Validate configuration and every definition against the data.
    Check,
    /// Run one read-only SQL query.
    Query {
        /// The SQL to run.
        #[arg(long)]
        sql: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Maximum rows printed.
        #[arg(long)]
        max_rows: Option<usize>,
    },
    /// Compute one metric over a range of periods.
    Metric {
        /// Metric name.
        name: String,
        /// First period: 2026-W40, 2026-11-16, 2026-11 or 2026-Q4.
        #[arg(long)]
        from: String,
        /// Last period, included.
        #[arg(long)]
        to: String,
        /// Grain: day, week, month or quarter.
        #[arg(long, default_value = "week")]
        grain: Grain,
        /// Dimensions to slice by, comma-separated.
        #[arg(long, value_delimiter = ',')]
        by: Vec<String>,
        /// DIMENSION=VALUE filter; repeat for several.
        #[arg(long)]
        filter: Vec<String>,
        /// Comparisons, comma-separated: previous, year_ago, trailing_4.
        #[arg(long, default_value = "")]
        compare: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Attribution model, for metrics that read reporting.attribution (default: kpi.toml).
        #[arg(long)]
        model: Option<String>,
        /// Attribution lookback such as 30d, for attributed metrics (default: kpi.toml).
        #[arg(long)]
        lookback: Option<String>,
    },
    /// Write one weekly report as a self-contained file: HTML (inline CSS and SVG), JSON or CSV.
    Report {
        /// Dashboard name (a file stem in dashboards/).
        dashboard: String,
        /// Week such as 2026-W47 (default: the latest complete week).
        #[arg(long)]
        week: Option<String>,
        /// Output file; its extension picks the format: .html, .json or .csv.
        #[arg(long)]
        out: PathBuf,
    },
    /// Freeze a weekly report (values, charts, definitions, data versions) in the snapshot store.
    Snapshot {
        /// Dashboard name.
        dashboard: String,
        /// Week such as 2026-W47 (default: the latest complete week).
        #[arg(long)]
        week: Option<String>,
    },
    /// Email a weekly report: snapshot, MIME message, SMTP, at most once per recipient list.
    Email {
        /// Dashboard name.
        dashboard: String,
        /// Week such as 2026-W47 (default: the latest complete week).
        #[arg(long)]
        week: Option<String>,
        /// Recipients, comma-separated (default: the dashboard's `email.to`).
        #[arg(long, value_delimiter = ',')]
        to: Vec<String>,
        /// Also write the message to this .eml file.
        #[arg(long)]
        eml: Option<PathBuf>,
        /// Build the message (and the .eml) without sending.
        #[arg(long)]
        dry_run: bool,
        /// Send again even if the send log says it was sent (same Message-ID).
        #[arg(long)]
        resend: bool,
    },
    /// Credit conversions to touches under an attribution model, from CSV or Parquet files.
    Attribution {
        /// Touches: touch_id, user_id, ts, channel, campaign (CSV or Parquet).
        #[arg(long)]
        touches: PathBuf,
        /// Conversions: conversion_id, user_id, ts, revenue (CSV or Parquet).
        #[arg(long)]
        conversions: PathBuf,
        /// first_touch, last_touch, last_non_direct, linear, position_based, time_decay, markov, or all.
        #[arg(long, default_value = "linear")]
        model: String,
        /// Lookback window before each conversion (inclusive), such as 30d or 12h.
        #[arg(long, default_value = "30d")]
        lookback: String,
        /// Half-life of the time_decay model.
        #[arg(long, default_value = "7d")]
        half_life: String,
        /// Output file, .csv or .parquet.
        #[arg(long)]
        out: PathBuf,
        /// Column names when they differ: KEY=COLUMN, keys touch_id, touch_entity, touch_ts,
        /// channel, campaign, conversion_id, conversion_entity, conversion_ts, revenue.
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
    },
    /// Start the HTTP server.
    Serve {
        /// Address to listen on (overrides kpi.toml).
        #[arg(long, env = "KPI_ADDR")]
        addr: Option<String>,
        /// Generate the demo data first when the data root is empty.
        #[arg(long)]
        demo: bool,
    },
}

/// Runs the parsed command; returns the exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    let addr = match &cli.command {
        Command::Serve { addr, .. } => addr.clone(),
        _ => None,
    };
    let overrides = Overrides {
        data: cli.data.clone(),
        addr,
    };
    let config = Arc::new(Config::load(&cli.project, &overrides)?);
    match cli.command {
        Command::Demo {
            out,
            seed,
            end,
            weeks,
            scale,
            force,
        } => {
            let out = match out {
                Some(out) => out,
                None => match &config.data_root {
                    kpi::config::DataRoot::Local(path) => path.clone(),
                    kpi::config::DataRoot::S3 { .. } => {
                        return Err(Error::input("demo", "the data root is on S3; pass --out DIR to write the demo locally, then upload it"));
                    }
                },
            };
            run_demo(&config, out, seed, end, weeks, scale, force)?;
            Ok(0)
        }
        Command::Check => check(&config).await,
        Command::Query {
            sql,
            format,
            max_rows,
        } => {
            let engine = Engine::try_new(Arc::clone(&config))?;
            engine.refresh().await?;
            // Views are available to ad-hoc SQL when the definitions are valid.
            match defs::load(&config, &engine).await {
                Ok(registry) => engine.install_views(registry.views).await,
                Err(problems) => eprintln!(
                    "warning: definitions have {} problem(s), so reporting views are unavailable; run `kpi check`",
                    problems.len()
                ),
            }
            let limits = QueryLimits {
                timeout: Duration::from_millis(config.server.sql_timeout_ms),
                max_rows: max_rows.unwrap_or(usize::MAX),
            };
            let result = engine.run_sql(&sql, limits).await?;
            let text = output::render(&result, format)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            if format != Format::Json {
                writeln!(stdout)?;
            }
            if result.truncated {
                eprintln!(
                    "(showing the first {} rows; raise --max-rows for more)",
                    result.rows
                );
            }
            Ok(0)
        }
        Command::Snapshot { dashboard, week } => {
            let (engine, registry) = open_project(&config).await?;
            let context =
                kpi::report::Context::new(&registry, &engine, &config, chrono::Utc::now());
            let (definition, period) = context.dashboard_week(&dashboard, week.as_deref())?;
            let store = kpi::snapshot::Store::open(&config)?;
            let taken = store.take(&context, definition, period).await?;
            let s = &taken.snapshot;
            println!(
                "{} snapshot {} of {} {} (taken {}){}",
                if taken.created {
                    "new"
                } else {
                    "unchanged: existing"
                },
                s.id,
                s.dashboard,
                s.week,
                s.taken_at.to_rfc3339(),
                s.previous
                    .as_ref()
                    .map(|p| format!("; replaces {p}"))
                    .unwrap_or_default()
            );
            Ok(0)
        }
        Command::Email {
            dashboard,
            week,
            to,
            eml,
            dry_run,
            resend,
        } => {
            let started = Instant::now();
            let (engine, registry) = open_project(&config).await?;
            let context =
                kpi::report::Context::new(&registry, &engine, &config, chrono::Utc::now());
            let (definition, period) = context.dashboard_week(&dashboard, week.as_deref())?;
            let summary = kpi::email::run(
                &context,
                kpi::email::Request {
                    dashboard: definition,
                    week: period,
                    to,
                    eml: eml.as_deref(),
                    dry_run,
                    resend,
                },
            )
            .await?;
            let email = &summary.email;
            eprintln!(
                "kpi email: \"{}\" to {} ({}; snapshot {}{})",
                email.subject,
                email.recipients.join(", "),
                email.message_id,
                summary.snapshot.id,
                if summary.snapshot_created {
                    ", new"
                } else {
                    ""
                }
            );
            if let Some(path) = &eml {
                eprintln!("kpi email: wrote {}", path.display());
            }
            match summary.outcome {
                None => eprintln!("kpi email: dry run, not sent"),
                Some(kpi::email::Outcome::Sent(record, _)) => eprintln!(
                    "kpi email: accepted by {}:{} after {} attempt(s), {:.2} s from start: {}",
                    config.email.smtp_host,
                    config.email.smtp_port,
                    record.attempts,
                    started.elapsed().as_secs_f64(),
                    record.smtp_reply.unwrap_or_default()
                ),
                Some(kpi::email::Outcome::AlreadySent(record)) => eprintln!(
                    "kpi email: already sent at {} ({}); nothing to do (--resend sends again)",
                    record.updated_at.to_rfc3339(),
                    record.message_id
                ),
                Some(kpi::email::Outcome::InProgress(record)) => {
                    eprintln!(
                        "kpi email: a send of this report to these recipients is recorded as in progress since {} ({}).\n\
                         If that process died after the SMTP server accepted the message, it was delivered; check for Message-ID {}.\n\
                         To send again under the same Message-ID (receivers that deduplicate drop a copy): --resend",
                        record.started_at.to_rfc3339(),
                        record.message_id,
                        record.message_id
                    );
                    return Ok(3);
                }
            }
            Ok(0)
        }
        Command::Report {
            dashboard,
            week,
            out,
        } => {
            let (engine, registry) = open_project(&config).await?;
            let context =
                kpi::report::Context::new(&registry, &engine, &config, chrono::Utc::now());
            let (definition, period) = context.dashboard_week(&dashboard, week.as_deref())?;
            let started = Instant::now();
            let report = context.build(definition, period).await?;
            let body = match out.extension().and_then(|e| e.to_str()) {
                Some("json") => serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::internal(e.to_string()))?,
                Some("csv") => kpi::report::to_csv(&report),
                Some("html") | Some("htm") => kpi::report::html::render(&report),
                _ => {
                    return Err(Error::input(
                        "bad_output",
                        format!("{}: use a .html, .json or .csv file name", out.display()),
                    ))
                }
            };
            output::write_atomically(&out, body.as_bytes())?;
            eprintln!(
                "kpi report: {} {} ({} to {}) → {} in {:.1} s",
                dashboard,
                report.week,
                report.start,
                report.end,
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Command::Attribution {
            touches,
            conversions,
            model,
            lookback,
            half_life,
            out,
            columns,
        } => {
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
            };
            let summary = attribution::stream::run(&job).await?;
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
        Command::Metric {
            name,
            from,
            to,
            grain,
            by,
            filter,
            compare,
            format,
            model,
            lookback,
        } => {
            let engine = Engine::try_new(Arc::clone(&config))?;
            engine.refresh().await?;
            let registry = defs::load_and_install(&config, &engine).await?;
            let calendar = config.calendar();
            let (from, to) = metrics::parse_range(&calendar, &from, &to, grain)?;
            let compare = metrics::parse_comparisons(&compare)?;
            let request = SeriesRequest {
                metric: name,
                from,
                to,
                by,
                filters: metrics::parse_filters(&filter)?,
                compare: compare.clone(),
                attribution: metrics::attribution_choice(
                    &config.attribution,
                    model.as_deref(),
                    lookback.as_deref(),
                )?,
            };
            let series = MetricService::new(&registry, &engine, calendar)
                .series(&request)
                .await?;
            let text = match format {
                Format::Json => {
                    serde_json::to_string_pretty(&series)
                        .map_err(|e| Error::internal(e.to_string()))?
                        + "\n"
                }
                Format::Csv => metrics::to_csv(&series, &compare),
                Format::Table => metrics::to_table(&series, &compare),
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(0)
        }
        Command::Serve {
            demo: with_demo, ..
        } => {
            if with_demo {
                if let kpi::config::DataRoot::Local(path) = &config.data_root {
                    let empty = std::fs::read_dir(path)
                        .map(|mut entries| entries.next().is_none())
                        .unwrap_or(true);
                    if empty {
                        run_demo(&config, path.clone(), 7, None, 64, 1.0, false)?;
                    }
                }
            }
            let application = web::Application::build(Arc::clone(&config)).await?;
            let addr = application.local_addr()?;
            eprintln!(
                "kpi serving {} on http://{addr} (health: http://{addr}/healthz)",
                config.data_root.url()
            );
            application.run().await?;
            Ok(0)
        }
    }
}

fn run_demo(
    config: &Config,
    out: PathBuf,
    seed: u64,
    end: Option<NaiveDate>,
    weeks: u32,
    scale: f64,
    force: bool,
) -> Result<()> {
    let end = end.unwrap_or_else(|| demo::default_end(chrono::Utc::now().date_naive()));
    let options = demo::DemoOptions {
        out: out.clone(),
        seed,
        end,
        weeks,
        scale,
        time_zone: config.time_zone,
        force,
    };
    let started = Instant::now();
    eprintln!(
        "kpi demo: {weeks} weeks ending {end}, seed {seed}, scale {scale} → {}",
        out.display()
    );
    let summary = demo::generate(&options, &mut |line| eprintln!("  {line}"))?;
    let mut stderr = std::io::stderr().lock();
    demo::print_summary(&summary, &mut stderr)?;
    writeln!(stderr, "done in {:.1}s", started.elapsed().as_secs_f64())?;
    Ok(())
}

async fn check(config: &Arc<Config>) -> Result<i32> {
    let engine = Engine::try_new(Arc::clone(config))?;
    engine.refresh().await?;
    let mut problems = 0usize;
    let mut stdout = std::io::stdout().lock();
    for problem in engine.layout_problems().await {
        writeln!(stdout, "{problem}")?;
        problems += 1;
    }
    let tables = engine.tables().await;
    for table in &tables {
        if let Some(error) = &table.error {
            writeln!(stdout, "{error}")?;
            problems += 1;
        }
    }
    match defs::load(config, &engine).await {
        Ok(registry) => {
            if problems == 0 {
                writeln!(
                    stdout,
                    "ok: {} tables, {} views, {} metrics, {} dashboards (definitions {})",
                    tables.len(),
                    registry.views.len(),
                    registry.metrics.len(),
                    registry.dashboards.len(),
                    registry.version
                )?;
            }
        }
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                writeln!(stdout, "{diagnostic}")?;
            }
            problems += diagnostics.len();
        }
    }
    if problems > 0 {
        writeln!(stdout, "{problems} problem(s) found")?;
        return Ok(1);
    }
    Ok(0)
}

/// Opens the engine over the data and loads and installs the definitions.
async fn open_project(config: &Arc<Config>) -> Result<(Engine, defs::Registry)> {
    let engine = Engine::try_new(Arc::clone(config))?;
    engine.refresh().await?;
    let registry = defs::load_and_install(config, &engine).await?;
    Ok((engine, registry))
}
