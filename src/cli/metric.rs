//! `kpi metric`: computes one metric over a range of periods and prints it.

use std::io::Write;
use std::sync::Arc;

use kpi::config::Config;
use kpi::metrics::{self, MetricService, SeriesRequest};
use kpi::output::Format;
use kpi::time::Grain;
use kpi::{Error, Result};

use super::Project;

/// Arguments of `kpi metric`.
#[derive(Debug, clap::Args)]
pub struct MetricArgs {
    /// Metric name.
    pub name: String,
    /// First period: 2026-W40, 2026-11-16, 2026-11 or 2026-Q4.
    #[arg(long)]
    pub from: String,
    /// Last period, included.
    #[arg(long)]
    pub to: String,
    /// Grain: day, week, month or quarter.
    #[arg(long, default_value = "week")]
    pub grain: Grain,
    /// Dimensions to slice by, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub by: Vec<String>,
    /// DIMENSION=VALUE filter; repeat for several.
    #[arg(long)]
    pub filter: Vec<String>,
    /// Comparisons, comma-separated: previous, year_ago, trailing_4.
    #[arg(long, default_value = "")]
    pub compare: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Attribution model, for metrics that read reporting.attribution (default: kpi.toml).
    #[arg(long)]
    pub model: Option<String>,
    /// Attribution lookback such as 30d, for attributed metrics (default: kpi.toml).
    #[arg(long)]
    pub lookback: Option<String>,
}

/// Computes one metric over a range of periods and prints it.
pub async fn run(config: &Arc<Config>, args: MetricArgs) -> Result<i32> {
    let MetricArgs {
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
    } = args;

    let project = Project::open(config).await?;
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
    let series = MetricService::new(&project.registry, &project.engine, calendar)
        .series(&request)
        .await?;
    let text = match format {
        Format::Json => {
            serde_json::to_string_pretty(&series).map_err(|e| Error::internal(e.to_string()))?
                + "\n"
        }
        Format::Csv => metrics::to_csv(&series, &compare),
        Format::Table => metrics::to_table(&series, &compare),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(0)
}
