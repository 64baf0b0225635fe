//! `kpi demo`: generates the demo data set as Parquet.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;

use kpi::config::{Config, DataRoot};
use kpi::{demo, Error, Result};

/// Arguments of `kpi demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Output folder (default: the project's data root).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Last day of data, YYYY-MM-DD (default: the last Sunday before today).
    #[arg(long)]
    pub end: Option<NaiveDate>,
    /// Weeks of history.
    #[arg(long, default_value_t = 64)]
    pub weeks: u32,
    /// Volume multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Write into a non-empty folder, replacing the demo tables there.
    #[arg(long)]
    pub force: bool,
}

impl DemoArgs {
    /// The defaults `kpi demo` uses, for `kpi serve --demo`.
    pub fn defaults() -> Self {
        Self {
            out: None,
            seed: 7,
            end: None,
            weeks: 64,
            scale: 1.0,
            force: false,
        }
    }
}

/// Generates the demo into `--out` or the (local) data root.
pub fn run(config: &Config, args: DemoArgs) -> Result<i32> {
    let out = match (&args.out, &config.data_root) {
        (Some(out), _) => out.clone(),
        (None, DataRoot::Local(path)) => path.clone(),
        (None, DataRoot::S3 { .. }) => {
            return Err(Error::input(
                "demo",
                "the data root is on S3; pass --out DIR to write the demo locally, then upload it",
            ));
        }
    };
    generate_into(config, out, &args)?;
    Ok(0)
}

/// Generates the demo into `out`, printing progress and a summary on stderr.
pub fn generate_into(config: &Config, out: PathBuf, args: &DemoArgs) -> Result<()> {
    let end = args
        .end
        .unwrap_or_else(|| demo::default_end(chrono::Utc::now().date_naive()));
    let options = demo::DemoOptions {
        out: out.clone(),
        seed: args.seed,
        end,
        weeks: args.weeks,
        scale: args.scale,
        time_zone: config.time_zone,
        force: args.force,
    };
    let started = Instant::now();
    eprintln!(
        "kpi demo: {} weeks ending {end}, seed {}, scale {} → {}",
        args.weeks,
        args.seed,
        args.scale,
        out.display()
    );
    let summary = demo::generate(&options, &mut |line| eprintln!("  {line}"))?;
    let mut stderr = std::io::stderr().lock();
    demo::print_summary(&summary, &mut stderr)?;
    writeln!(stderr, "done in {:.1}s", started.elapsed().as_secs_f64())?;
    Ok(())
}
