//! Definitions: `metrics/`, `queries/`, `dashboards/` → one validated [`Registry`].
//!
//! Files parse into the plain structs of [`raw`]; [`load`] then validates the whole set at
//! once (names, references, duplicates, cycles, source of truth, and every SQL piece planned
//! against the landed schemas) and returns either a registry or *every* problem, each with its
//! file and line. Nothing downstream sees an unvalidated definition. This module plans SQL
//! through an engine [`Sandbox`] and never changes what the engine serves.

//!
//! Layout: [`files`] reads the folders, [`raw`] is the files' shape, [`resolve`] validates
//! (one file each for views, metrics and dashboards), [`model`] holds the validated types.

pub mod diagnostic;
pub mod expression;
pub mod files;
pub mod history;
pub mod model;
pub mod raw;
mod resolve;

use std::collections::BTreeSet;

use crate::config::Config;
use crate::engine::{Engine, Sandbox};
pub use diagnostic::Diagnostic;
pub use files::{fingerprint, read_files, SourceFile};
pub use model::*;
use resolve::Resolver;

/// Folder of metric files.
pub const METRICS_DIR: &str = "metrics";
/// Folder of reporting views.
pub const QUERIES_DIR: &str = "queries";
/// Folder of dashboards.
pub const DASHBOARDS_DIR: &str = "dashboards";

/// Loads and validates every definition of the project against the engine's landed tables.
/// Returns the registry when there is no problem, else every problem found.
pub async fn load(
    config: &Config,
    engine: &Engine,
) -> std::result::Result<Registry, Vec<Diagnostic>> {
    load_planned(config, engine)
        .await
        .map(|(registry, _planned)| registry)
}

/// [`load`], and the sandbox the views were planned in, so that installing them
/// ([`Engine::install_planned_views`]) does not plan them again.
pub async fn load_planned(
    config: &Config,
    engine: &Engine,
) -> std::result::Result<(Registry, Sandbox), Vec<Diagnostic>> {
    let (files, mut problems) = read_files(&config.project_dir);
    let sandbox = match engine.sandbox() {
        Ok(sandbox) => sandbox,
        Err(error) => {
            problems.push(Diagnostic::new(
                "kpi.toml",
                1,
                format!("cannot start the engine: {error}"),
            ));
            return Err(problems);
        }
    };
    let tables: BTreeSet<String> = engine
        .tables()
        .await
        .into_iter()
        .map(|table| table.name)
        .collect();
    let mut resolver = Resolver::new(config, sandbox, tables, problems);
    let registry = resolver.resolve(&files).await;
    if resolver.problems.is_empty() {
        Ok((registry, resolver.into_sandbox()))
    } else {
        let mut problems = resolver.problems;
        problems.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        problems.dedup();
        Err(problems)
    }
}

/// Loads the definitions, installs their views in the engine, and turns problems into one
/// input error that lists them all (for commands that cannot work without valid definitions).
pub async fn load_and_install(config: &Config, engine: &Engine) -> crate::Result<Registry> {
    let started = std::time::Instant::now();
    match load_planned(config, engine).await {
        Ok((registry, planned)) => {
            let loaded = started.elapsed();
            engine
                .install_planned_views(registry.views.clone(), Some(&planned))
                .await;
            tracing::debug!(
                "definitions loaded in {} ms, {} views installed in {} ms",
                loaded.as_millis(),
                registry.views.len(),
                (started.elapsed() - loaded).as_millis()
            );
            Ok(registry)
        }
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Err(crate::Error::input(
                "invalid_definitions",
                format!(
                    "definitions are invalid (run `kpi check`):\n{}",
                    lines.join("\n")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
