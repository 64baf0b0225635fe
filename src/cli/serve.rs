//! `kpi serve`: starts the HTTP server (optionally over freshly generated demo data).

use std::sync::Arc;

use kpi::config::Config;
use kpi::{web, Result};

/// Arguments of `kpi serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides kpi.toml).
    #[arg(long, env = "KPI_ADDR")]
    pub addr: Option<String>,
    /// Generate the demo data first when the data root is empty.
    #[arg(long)]
    pub demo: bool,
}

/// Starts the HTTP server (optionally over freshly generated demo data).
pub async fn run(config: &Arc<Config>, args: ServeArgs) -> Result<i32> {
    let ServeArgs {
        demo: with_demo, ..
    } = args;

    if with_demo {
        if let kpi::config::DataRoot::Local(path) = &config.data_root {
            let empty = std::fs::read_dir(path)
                .map(|mut entries| entries.next().is_none())
                .unwrap_or(true);
            if empty {
                super::demo::generate_into(
                    config,
                    path.clone(),
                    &super::demo::DemoArgs::defaults(),
                )?;
            }
        }
    }
    let application = web::Application::build(Arc::clone(config)).await?;
    let addr = application.local_addr()?;
    eprintln!(
        "kpi serving {} on http://{addr} (health: http://{addr}/healthz)",
        config.data_root.url()
    );
    application.run().await?;
    Ok(0)
}
