//! The resolver: raw definition files → one validated [`Registry`], with every problem.
//!
//! One file per kind of definition (`views.rs`, `metrics.rs`, `dashboards.rs`); this file holds
//! the resolver's state and the helpers they share (locating errors, source lookups). It plans
//! SQL through an engine [`Sandbox`] and never changes what the engine serves.

mod alerts;
mod dashboards;
mod metrics;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::{
    Choice, Diagnostic, Metric, Registry, SourceFile, DASHBOARDS_DIR, METRICS_DIR, QUERIES_DIR,
};
use crate::config::{line_of, Config};
use crate::digest::hex;
use crate::engine::{Sandbox, ViewDef, REPORTING_SCHEMA};

pub(super) struct Resolver<'a> {
    config: &'a Config,
    sandbox: Sandbox,
    tables: BTreeSet<String>,
    pub(super) problems: Vec<Diagnostic>,
    /// Sources each view ultimately reads (for source-of-truth checks).
    view_sources: HashMap<String, BTreeSet<String>>,
    /// Every metric name declared, valid or not: a reference to a metric that has errors is
    /// not reported again as "unknown" (the metric's own problem was reported once).
    declared_metrics: BTreeSet<String>,
    /// Views generated for conversion metrics, installed with the project's own.
    generated_views: Vec<ViewDef>,
    /// Alert names seen so far and where (names are unique across dashboards).
    alert_names: BTreeMap<String, String>,
}

impl<'a> Resolver<'a> {
    /// Starts a resolver over the landed `tables`, keeping the file problems found so far.
    pub(super) fn new(
        config: &'a Config,
        sandbox: Sandbox,
        tables: BTreeSet<String>,
        problems: Vec<Diagnostic>,
    ) -> Self {
        Self {
            config,
            sandbox,
            tables,
            problems,
            view_sources: HashMap::new(),
            declared_metrics: BTreeSet::new(),
            generated_views: Vec::new(),
            alert_names: BTreeMap::new(),
        }
    }

    /// The sandbox the definitions were planned in (their views are in it).
    pub(super) fn into_sandbox(self) -> Sandbox {
        self.sandbox
    }

    /// Resolves every file; problems accumulate in `self.problems`.
    pub(super) async fn resolve(&mut self, files: &[SourceFile]) -> Registry {
        let mut hasher = Sha256::new();
        for file in files {
            hasher.update(file.path.to_string_lossy().as_bytes());
            hasher.update(file.text.as_bytes());
        }
        let version = hex(&hasher.finalize()[..8]);
        let mut views = self
            .resolve_views(files.iter().filter(|f| f.path.starts_with(QUERIES_DIR)))
            .await;
        self.resolve_attribution().await;
        let metrics = self
            .resolve_metrics(files.iter().filter(|f| f.path.starts_with(METRICS_DIR)))
            .await;
        let dashboards = self.resolve_dashboards(
            files.iter().filter(|f| f.path.starts_with(DASHBOARDS_DIR)),
            &metrics,
        );
        views.append(&mut self.generated_views);
        Registry {
            metrics,
            views,
            dashboards,
            version,
        }
    }

    fn report(
        &mut self,
        path: &Path,
        line: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut diagnostic = Diagnostic::new(path, line, message);
        diagnostic.hint = hint;
        self.problems.push(diagnostic);
    }

    fn table_hint(&self, reference: &str) -> String {
        let schema = reference.split('.').next().unwrap_or_default();
        let same_source: Vec<&str> = self
            .tables
            .iter()
            .filter(|table| table.starts_with(&format!("{schema}.")))
            .map(String::as_str)
            .collect();
        if reference.contains('.') && !same_source.is_empty() {
            format!("tables of source `{schema}`: {}", same_source.join(", "))
        } else {
            format!(
                "tables are <source>.<table> from folders under the data root ({}); views are reporting.<file stem>",
                self.config.data_root.url()
            )
        }
    }

    /// Returns the sources (landed schemas) a SQL text reads, directly or through views.
    fn sources_of(&self, sql: &str) -> BTreeSet<String> {
        let mut sources = BTreeSet::new();
        for reference in self.sandbox.table_references(sql).unwrap_or_default() {
            let reference = reference.to_ascii_lowercase();
            match reference.split_once('.') {
                Some((REPORTING_SCHEMA, view)) => {
                    if let Some(inner) = self.view_sources.get(view) {
                        sources.extend(inner.iter().cloned());
                    }
                }
                Some((schema, _)) => {
                    sources.insert(schema.to_string());
                }
                None => {}
            }
        }
        sources
    }

    /// Parses a TOML definition file into its raw shape, or reports where it does not parse.
    fn parse_toml<T: serde::de::DeserializeOwned>(&mut self, file: &SourceFile) -> Option<T> {
        match toml::from_str(&file.text) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                let line = error
                    .span()
                    .map(|span| line_of(&file.text, span.start))
                    .unwrap_or(1);
                self.report(&file.path, line, error.message().to_string(), None);
                None
            }
        }
    }

    /// Reads one of a closed set of names (`tier`, `unit`, ...): the first of the set when
    /// absent; a problem (and the default, so resolution goes on) when unknown.
    fn choice<T: Choice>(
        &mut self,
        file: &SourceFile,
        value: Option<&Spanned<String>>,
        key: &str,
    ) -> T {
        let default = T::ALL[0].1;
        let Some(value) = value else {
            return default;
        };
        T::from_name(value.get_ref()).unwrap_or_else(|| {
            self.report(
                &file.path,
                line_of(&file.text, value.span().start),
                format!("`{key}` is `{}`", value.get_ref()),
                Some(format!("use one of: {}", T::names().join(", "))),
            );
            default
        })
    }
}

/// Visit state of a view that is part of a reference cycle (reported once, then skipped).
const IN_CYCLE: u8 = 3;

/// Returns the content hash of a resolved metric (first 16 hex digits of SHA-256).
fn definition_hash(metric: &Metric) -> String {
    let canonical = serde_json::json!({
        "name": metric.name, "source": metric.source, "sources": metric.sources, "unit": metric.unit,
        "kind": metric.kind, "dimensions": metric.dimensions, "good": metric.good,
    });
    hex(&Sha256::digest(canonical.to_string().as_bytes())[..8])
}

fn is_week_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 8
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && &text[4..6] == "-W"
        && bytes[6..].iter().all(u8::is_ascii_digit)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Finds the 1-based line of the first case-insensitive occurrence of `needle`, or 1.
fn find_line(text: &str, needle: &str) -> usize {
    let lower = text.to_ascii_lowercase();
    lower
        .find(&needle.to_ascii_lowercase())
        .map(|offset| line_of(text, offset))
        .unwrap_or(1)
}

/// Places a SQL error in the text: sqlparser's `Line: N`, else a quoted name it mentions.
fn sql_error_line(sql: &str, message: &str) -> usize {
    if let Some(rest) = message.split("No field named ").nth(1) {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let name = name
            .trim_end_matches('.')
            .rsplit('.')
            .next()
            .unwrap_or_default();
        if !name.is_empty()
            && sql
                .to_ascii_lowercase()
                .contains(&name.to_ascii_lowercase())
        {
            return find_line(sql, name);
        }
    }
    if let Some(rest) = message.split("Line: ").nth(1) {
        if let Some(line) = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
        {
            return line;
        }
    }
    for quoted in message.split(['\'', '"', '`']).skip(1).step_by(2) {
        let name = quoted.rsplit('.').next().unwrap_or(quoted);
        if !name.is_empty()
            && sql
                .to_ascii_lowercase()
                .contains(&name.to_ascii_lowercase())
        {
            return find_line(sql, name);
        }
    }
    1
}

#[cfg(test)]
mod pure_tests {
    use super::*;

    #[test]
    fn sql_errors_are_located() {
        let sql = "SELECT a,\n  b\nFROM t\nWHERE nope > 1";
        assert_eq!(sql_error_line(sql, "Schema error: No field named nope."), 4);
        assert_eq!(
            sql_error_line(sql, "Schema error: No field named b. Did you mean 'x'?"),
            2
        );
        assert_eq!(
            sql_error_line(sql, "Schema error: No field named 'nope'."),
            4
        );
        assert_eq!(
            sql_error_line(sql, "sql parser error: Expected: end at Line: 3, Column: 2"),
            3
        );
    }

    #[test]
    fn week_labels() {
        assert!(is_week_label("2026-W01"));
        assert!(!is_week_label("2026-01"));
        assert!(!is_week_label("2026-w01"));
    }
}
