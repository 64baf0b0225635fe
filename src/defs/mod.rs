//! Definitions: `metrics/`, `queries/`, `dashboards/` → one validated [`Registry`].
//!
//! Files parse into the plain structs of [`raw`]; [`load`] then validates the whole set at
//! once (names, references, duplicates, cycles, source of truth, and every SQL piece planned
//! against the landed schemas) and returns either a registry or *every* problem, each with its
//! file and line. Nothing downstream sees an unvalidated definition. This module plans SQL
//! through an engine [`Sandbox`] and never changes what the engine serves.

pub mod diagnostic;
pub mod expression;
pub mod history;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::config::{is_identifier, line_of, Config};
use crate::engine::discovery::hex;
use crate::engine::{Engine, Sandbox, ViewDef, REPORTING_SCHEMA};
pub use diagnostic::Diagnostic;

/// Folder of metric files.
pub const METRICS_DIR: &str = "metrics";
/// Folder of reporting views.
pub const QUERIES_DIR: &str = "queries";
/// Folder of dashboards.
pub const DASHBOARDS_DIR: &str = "dashboards";

/// How a metric is computed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricKind {
    /// An aggregate over the rows of one table or view.
    Simple {
        /// Aggregate expression.
        measure: String,
        /// Table or view read.
        table: String,
        /// Column placing a row in a period.
        time_column: String,
        /// Optional predicate.
        filter: Option<String>,
    },
    /// One metric divided by another, each summed over the period first.
    Ratio {
        /// Numerator metric name.
        numerator: String,
        /// Denominator metric name.
        denominator: String,
    },
    /// Arithmetic over other metrics, possibly from different sources.
    Derived {
        /// The expression, such as `spend / mqls`.
        expression: String,
    },
    /// A running total, or a to-date total reset each week, month, quarter or year.
    Cumulative {
        /// The additive metric accumulated.
        of: String,
        /// `running`, `week`, `month`, `quarter` or `year`.
        window: String,
    },
    /// The share of entities that reach a second step within a window after a first one,
    /// counted in the period they first reached the first step.
    Conversion {
        /// Entity column.
        entity: String,
        /// Table of the first step.
        from_table: String,
        /// Table of the second step.
        to_table: String,
        /// Window in days (inclusive).
        within_days: u32,
        /// The generated `reporting` view the metric averages.
        view: String,
    },
}

/// A composite metric waiting for the metrics it uses.
struct Composite {
    metric: Metric,
    /// Metric names used, with the line that names them.
    parts: Vec<(String, usize)>,
}

/// A validated metric.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Metric {
    /// Unique name.
    pub name: String,
    /// Human label.
    pub label: String,
    /// Meaning.
    pub description: String,
    /// Declared source of truth (the first of `sources` for composites that declare none).
    pub source: String,
    /// Every source the number depends on (one, except for derived metrics across sources).
    pub sources: Vec<String>,
    /// Owner.
    pub owner: String,
    /// `primary` or `supporting`.
    pub tier: String,
    /// `count`, `currency`, `percent`, `ratio` or `duration`.
    pub unit: String,
    /// Currency code for currency metrics.
    pub currency: Option<String>,
    /// `up`, `down` or `neutral`.
    pub good: String,
    /// How it is computed.
    pub kind: MetricKind,
    /// Allowed dimensions.
    pub dimensions: Vec<String>,
    /// Weekly targets by first week.
    pub targets: BTreeMap<String, f64>,
    /// Defining file, relative to the project.
    pub path: PathBuf,
    /// Line of its `name`.
    pub line: usize,
    /// Content hash of the resolved definition.
    pub hash: String,
}

/// A validated dashboard: one weekly report template.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Dashboard {
    /// Name (file stem), used in URLs.
    pub name: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Audience.
    pub audience: String,
    /// Headline KPIs.
    pub primary: Vec<String>,
    /// Supporting KPIs.
    pub supporting: Vec<String>,
    /// Attribution model of the report (`None`: kpi.toml's default).
    pub attribution_model: Option<String>,
    /// Attribution lookback of the report (`None`: kpi.toml's default).
    pub attribution_lookback: Option<String>,
    /// Comparisons on every tile.
    pub compare: Vec<String>,
    /// Weeks in sparklines and trend charts.
    pub trend_weeks: u32,
    /// Supporting KPIs grouped under headings (one "Supporting KPIs" group when none is given).
    pub sections: Vec<Section>,
    /// Charts, in page order.
    pub charts: Vec<Chart>,
    /// The breakdown table.
    pub breakdown: Option<Breakdown>,
    /// The metric shown under every attribution model.
    pub attribution_comparison: Option<String>,
    /// Reconciliations in the data-health section.
    pub reconcile: Vec<Reconcile>,
    /// Thresholds of the summary.
    pub thresholds: Thresholds,
    /// Recipients of the scheduled email.
    pub email_to: Vec<String>,
    /// When `kpi serve` sends it: weekday and local time, for the latest complete week.
    pub schedule: Option<Schedule>,
    /// Content hash of the file (part of report ETags).
    pub hash: String,
}

/// A weekly send time in the reporting time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    /// Day of the week.
    pub weekday: chrono::Weekday,
    /// Local time.
    pub time: chrono::NaiveTime,
}

impl Schedule {
    /// Parses `monday 08:00`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let usage = "write the schedule as a weekday and a time, such as \"monday 08:00\"";
        let (day, time) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("`{text}`: {usage}"))?;
        let weekday = day
            .to_ascii_lowercase()
            .parse::<chrono::Weekday>()
            .map_err(|_| format!("`{day}` is not a weekday; {usage}"))?;
        let time = chrono::NaiveTime::parse_from_str(time.trim(), "%H:%M")
            .map_err(|_| format!("`{time}` is not a time; {usage}"))?;
        Ok(Self { weekday, time })
    }
}

/// A titled group of KPI tiles.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Metrics.
    pub metrics: Vec<String>,
}

/// One chart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Chart {
    /// URL-safe name.
    pub name: String,
    /// Heading.
    pub title: String,
    /// What it draws.
    pub kind: ChartKind,
}

/// What a chart draws.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChartKind {
    /// One metric over the trend weeks, with its target line.
    Trend {
        /// Metric.
        metric: String,
    },
    /// One metric in the week by a dimension.
    Breakdown {
        /// Metric.
        metric: String,
        /// Dimension.
        by: String,
    },
    /// Metrics in funnel order with the ratio of each step to the one before.
    Funnel {
        /// Steps.
        metrics: Vec<String>,
    },
}

/// Metrics side by side by one dimension.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Breakdown {
    /// Dimension.
    pub by: String,
    /// Metrics (columns).
    pub metrics: Vec<String>,
}

/// Two metrics that should agree by a dimension.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reconcile {
    /// In words.
    pub label: String,
    /// Reference metric.
    pub left: String,
    /// Compared metric.
    pub right: String,
    /// Dimension.
    pub by: String,
    /// Gap share above which it is a finding.
    pub tolerance: f64,
}

/// Thresholds of the generated summary.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Thresholds {
    /// Week-over-week change share worth a sentence.
    pub change: f64,
    /// Share of target below which a KPI is behind.
    pub behind_target: f64,
}

/// Returns whether a metric reads the attribution table, itself or through its parts.
pub fn reads_attribution(metrics: &BTreeMap<String, Metric>, metric: &Metric) -> bool {
    let table = format!(
        "{REPORTING_SCHEMA}.{}",
        crate::attribution::table::TABLE_NAME
    );
    match &metric.kind {
        MetricKind::Simple { table: read, .. } => read.eq_ignore_ascii_case(&table),
        MetricKind::Ratio {
            numerator,
            denominator,
        } => [numerator, denominator].iter().any(|p| {
            metrics
                .get(*p)
                .is_some_and(|m| reads_attribution(metrics, m))
        }),
        MetricKind::Derived { expression } => expression::Expression::parse(expression)
            .map(|e| e.metrics())
            .unwrap_or_default()
            .iter()
            .any(|p| {
                metrics
                    .get(p)
                    .is_some_and(|m| reads_attribution(metrics, m))
            }),
        MetricKind::Cumulative { of, .. } => metrics
            .get(of)
            .is_some_and(|m| reads_attribution(metrics, m)),
        MetricKind::Conversion { .. } => false,
    }
}

/// The validated definition set.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Metrics by name.
    pub metrics: BTreeMap<String, Metric>,
    /// Views in dependency order.
    pub views: Vec<ViewDef>,
    /// Dashboards by name.
    pub dashboards: BTreeMap<String, Dashboard>,
    /// Hash of every definition file's content: changes with any edit.
    pub version: String,
}

/// One definition file's text, with its project-relative path.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the project folder.
    pub path: PathBuf,
    /// Content.
    pub text: String,
}

/// Reads every definition file of the project (sorted, so results do not depend on the OS).
pub fn read_files(project_dir: &Path) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (dir, extension) in [
        (METRICS_DIR, "toml"),
        (QUERIES_DIR, "sql"),
        (DASHBOARDS_DIR, "toml"),
    ] {
        let folder = project_dir.join(dir);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == extension))
            .collect();
        paths.sort();
        for path in paths {
            let relative = PathBuf::from(dir).join(path.file_name().unwrap_or_default());
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push(SourceFile {
                    path: relative,
                    text,
                }),
                Err(error) => problems.push(Diagnostic::new(
                    relative,
                    1,
                    format!("cannot read file: {error}"),
                )),
            }
        }
    }
    (files, problems)
}

/// Returns a hash of all definition files' names and contents (for change detection).
pub fn fingerprint(project_dir: &Path) -> String {
    let (files, problems) = read_files(project_dir);
    let mut hasher = Sha256::new();
    for file in &files {
        hasher.update(file.path.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(file.text.as_bytes());
        hasher.update([0]);
    }
    for problem in &problems {
        hasher.update(problem.to_string().as_bytes());
    }
    hex(&hasher.finalize()[..8])
}

/// Loads and validates every definition of the project against the engine's landed tables.
/// Returns the registry when there is no problem, else every problem found.
pub async fn load(
    config: &Config,
    engine: &Engine,
) -> std::result::Result<Registry, Vec<Diagnostic>> {
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
    let mut resolver = Resolver {
        config,
        sandbox,
        tables,
        problems,
        view_sources: HashMap::new(),
        declared_metrics: BTreeSet::new(),
        generated_views: Vec::new(),
    };
    let registry = resolver.resolve(&files).await;
    if resolver.problems.is_empty() {
        Ok(registry)
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
    match load(config, engine).await {
        Ok(registry) => {
            engine.install_views(registry.views.clone()).await;
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

struct Resolver<'a> {
    config: &'a Config,
    sandbox: Sandbox,
    tables: BTreeSet<String>,
    problems: Vec<Diagnostic>,
    /// Sources each view ultimately reads (for source-of-truth checks).
    view_sources: HashMap<String, BTreeSet<String>>,
    /// Every metric name declared, valid or not: a reference to a metric that has errors is
    /// not reported again as "unknown" (the metric's own problem was reported once).
    declared_metrics: BTreeSet<String>,
    /// Views generated for conversion metrics, installed with the project's own.
    generated_views: Vec<ViewDef>,
}

impl Resolver<'_> {
    async fn resolve(&mut self, files: &[SourceFile]) -> Registry {
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

    /// Orders `queries/*.sql` by their references to each other and plans them in that order.
    async fn resolve_views<'f>(
        &mut self,
        files: impl Iterator<Item = &'f SourceFile>,
    ) -> Vec<ViewDef> {
        struct Pending<'f> {
            file: &'f SourceFile,
            name: String,
            deps: Vec<String>,
        }
        let mut pending: BTreeMap<String, Pending<'f>> = BTreeMap::new();
        for file in files {
            let stem = file
                .path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if !is_identifier(&stem) {
                self.report(&file.path, 1, format!("`{stem}` is not a valid view name"),
                    Some("name the file with lowercase letters, digits and `_`, such as clean_sessions.sql".into()));
                continue;
            }
            let references = match self.sandbox.table_references(&file.text) {
                Ok(references) => references,
                Err(error) => {
                    let line = sql_error_line(&file.text, &error.message);
                    self.report(
                        &file.path,
                        line,
                        error.message,
                        Some("a view is one SELECT statement".into()),
                    );
                    continue;
                }
            };
            let mut deps = Vec::new();
            for reference in references {
                let reference = reference.to_ascii_lowercase();
                if let Some(view) = reference.strip_prefix("reporting.") {
                    deps.push(view.to_string());
                }
            }
            pending.insert(
                stem.clone(),
                Pending {
                    file,
                    name: stem,
                    deps,
                },
            );
        }

        // Depth-first topological order; a back edge is a cycle.
        let mut order: Vec<String> = Vec::new();
        let mut state: HashMap<String, u8> = HashMap::new(); // 1 = visiting, 2 = done, IN_CYCLE
        let deps: HashMap<String, Vec<String>> = pending
            .iter()
            .map(|(name, item)| (name.clone(), item.deps.clone()))
            .collect();
        let paths: HashMap<String, PathBuf> = pending
            .iter()
            .map(|(name, item)| (name.clone(), item.file.path.clone()))
            .collect();
        for name in pending.keys() {
            let mut stack: Vec<String> = Vec::new();
            self.visit(name, &deps, &mut state, &mut stack, &mut order, &paths);
        }

        let mut views = Vec::new();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for name in order {
            if state.get(&name) == Some(&IN_CYCLE) {
                failed.insert(name.clone());
                continue;
            }
            let Some(item) = pending.get(&name) else {
                continue;
            };
            if let Some(bad) = item.deps.iter().find(|dep| failed.contains(*dep)) {
                failed.insert(name.clone());
                let line = find_line(&item.file.text, bad);
                self.report(
                    &item.file.path,
                    line,
                    format!("depends on reporting.{bad}, which has errors (see above)"),
                    None,
                );
                continue;
            }
            let mut broken = false;
            for missing in item.deps.iter().filter(|dep| !pending.contains_key(*dep)) {
                broken = true;
                let line = find_line(&item.file.text, missing);
                self.report(
                    &item.file.path,
                    line,
                    format!("unknown view reporting.{missing}"),
                    Some(format!("add queries/{missing}.sql or fix the name")),
                );
            }
            // Landed references are checked even when a view is missing: report everything.
            if self.check_landed_references(&item.file.path, &item.file.text) || broken {
                failed.insert(name.clone());
                continue;
            }
            match self.sandbox.add_view(&item.name, &item.file.text).await {
                Ok(_) => {
                    let sources = self.sources_of(&item.file.text);
                    self.view_sources.insert(name.clone(), sources);
                    views.push(ViewDef {
                        name: name.clone(),
                        sql: item.file.text.clone(),
                    });
                }
                Err(error) => {
                    failed.insert(name.clone());
                    let line = sql_error_line(&item.file.text, &error.message);
                    self.report(
                        &item.file.path,
                        line,
                        format!("view does not plan: {}", first_line(&error.message)),
                        None,
                    );
                }
            }
        }
        views
    }

    /// Makes `reporting.attribution` available when the touches and conversions relations named
    /// in `kpi.toml` exist and have the contract's columns. Its source of truth is the
    /// conversions' source: the touches only distribute the credit of conversions that source
    /// counts (the one documented exception to "a metric reads only its own source").
    async fn resolve_attribution(&mut self) {
        use crate::attribution::table::{
            missing_columns, AttributionTable, Cache, CONVERSION_COLUMNS, TABLE_NAME, TOUCH_COLUMNS,
        };
        let inputs = self.config.attribution.clone();
        let mut complete = true;
        for (name, required) in [
            (&inputs.touches, TOUCH_COLUMNS),
            (&inputs.conversions, CONVERSION_COLUMNS),
        ] {
            let (path, defined) = match name.split_once('.') {
                Some((REPORTING_SCHEMA, view)) => (
                    Path::new(QUERIES_DIR).join(format!("{view}.sql")),
                    self.view_sources.contains_key(view),
                ),
                _ => (
                    PathBuf::from(crate::config::CONFIG_FILE),
                    self.tables.contains(name),
                ),
            };
            if !defined {
                complete = false;
                continue;
            }
            let Ok(plan) = self.sandbox.plan(&format!("SELECT * FROM {name}")).await else {
                complete = false;
                continue;
            };
            let missing = missing_columns(plan.schema().as_arrow(), &required);
            if !missing.is_empty() {
                complete = false;
                self.report(
                    &path,
                    1,
                    format!(
                        "`{name}` is an attribution input ([attribution] in kpi.toml) but has no column(s) {}",
                        missing.join(", ")
                    ),
                    Some(format!("alias columns so that it has {}", required.join(", "))),
                );
            }
        }
        if !complete {
            return;
        }
        let table = AttributionTable::new(
            &inputs.touches,
            &inputs.conversions,
            inputs.default,
            Arc::new(Cache::default()),
        );
        if self.sandbox.add_table(TABLE_NAME, Arc::new(table)).is_ok() {
            let sources = self.sources_of(&format!("SELECT * FROM {}", inputs.conversions));
            self.view_sources.insert(TABLE_NAME.to_string(), sources);
        }
    }

    fn visit(
        &mut self,
        name: &str,
        deps: &HashMap<String, Vec<String>>,
        state: &mut HashMap<String, u8>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
        paths: &HashMap<String, PathBuf>,
    ) {
        match state.get(name) {
            Some(2) | Some(&IN_CYCLE) => return,
            Some(1) => {
                let start = stack.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..]
                    .iter()
                    .map(|n| format!("reporting.{n}"))
                    .collect();
                cycle.push(format!("reporting.{name}"));
                for member in &stack[start..] {
                    state.insert(member.clone(), IN_CYCLE);
                }
                let path = paths.get(name).cloned().unwrap_or_default();
                self.report(
                    &path,
                    1,
                    format!(
                        "views reference each other in a cycle: {}",
                        cycle.join(" → ")
                    ),
                    Some(
                        "break the cycle: a view may only read views that do not read it back"
                            .into(),
                    ),
                );
                return;
            }
            _ => {}
        }
        if !deps.contains_key(name) {
            return;
        }
        state.insert(name.to_string(), 1);
        stack.push(name.to_string());
        for dep in deps.get(name).cloned().unwrap_or_default() {
            self.visit(&dep, deps, state, stack, order, paths);
        }
        stack.pop();
        if state.get(name) != Some(&IN_CYCLE) {
            state.insert(name.to_string(), 2);
        }
        order.push(name.to_string());
    }

    /// Reports references to landed tables that do not exist; returns whether any was found.
    fn check_landed_references(&mut self, path: &Path, sql: &str) -> bool {
        let Ok(references) = self.sandbox.table_references(sql) else {
            return false;
        };
        let mut bad = false;
        for reference in references {
            let reference = reference.to_ascii_lowercase();
            if reference.starts_with("reporting.") || reference.starts_with("information_schema.") {
                continue;
            }
            if !self.tables.contains(&reference) {
                bad = true;
                let line = find_line(sql, &reference);
                let hint = self.table_hint(&reference);
                self.report(
                    path,
                    line,
                    format!("unknown table `{reference}`"),
                    Some(hint),
                );
            }
        }
        bad
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

    async fn resolve_metrics<'f>(
        &mut self,
        files: impl Iterator<Item = &'f SourceFile>,
    ) -> BTreeMap<String, Metric> {
        let mut metrics: BTreeMap<String, Metric> = BTreeMap::new();
        let mut composites: Vec<Composite> = Vec::new();
        for file in files {
            let parsed: raw::MetricFile = match toml::from_str(&file.text) {
                Ok(parsed) => parsed,
                Err(error) => {
                    let line = error
                        .span()
                        .map(|span| line_of(&file.text, span.start))
                        .unwrap_or(1);
                    self.report(&file.path, line, error.message().to_string(), None);
                    continue;
                }
            };
            for raw_metric in parsed.metric {
                if let Some(resolved) = self
                    .resolve_metric(file, raw_metric, &metrics, &mut composites)
                    .await
                {
                    metrics.insert(resolved.name.clone(), resolved);
                }
            }
        }
        self.resolve_composites(composites, &mut metrics);
        metrics
    }

    /// Resolves one metric: simple and conversion metrics at once, composite ones (ratio,
    /// derived, cumulative) later, when every metric they use is known.
    async fn resolve_metric(
        &mut self,
        file: &SourceFile,
        raw_metric: raw::RawMetric,
        metrics: &BTreeMap<String, Metric>,
        composites: &mut Vec<Composite>,
    ) -> Option<Metric> {
        let at = |offset: usize| line_of(&file.text, offset);
        let name = raw_metric.name.get_ref().clone();
        let line = at(raw_metric.name.span().start);
        if !is_identifier(&name) {
            self.report(
                &file.path,
                line,
                format!("metric name `{name}` is not valid"),
                Some("use lowercase letters, digits and `_`, starting with a letter".into()),
            );
            return None;
        }
        let first_declaration = self.declared_metrics.insert(name.clone());
        if let Some(first) = metrics.get(&name) {
            let message = format!(
                "duplicate metric name `{name}`; first defined at {}:{}",
                first.path.display(),
                first.line
            );
            self.report(
                &file.path,
                line,
                message,
                Some("metric names are unique across all files in metrics/".into()),
            );
            return None;
        }
        if !first_declaration {
            self.report(
                &file.path,
                line,
                format!("duplicate metric name `{name}` (its first definition has errors)"),
                None,
            );
            return None;
        }
        let source = raw_metric
            .source
            .as_ref()
            .map(|source| source.get_ref().clone());
        if let Some(source_spanned) = &raw_metric.source {
            if !self.config.sources.contains_key(source_spanned.get_ref()) {
                let known: Vec<&str> = self.config.sources.keys().map(String::as_str).collect();
                self.report(
                    &file.path,
                    at(source_spanned.span().start),
                    format!("unknown source `{}`", source_spanned.get_ref()),
                    Some(format!(
                        "configured sources in kpi.toml: {}",
                        known.join(", ")
                    )),
                );
            }
        }
        let tier = self.choice(
            &file.path,
            &file.text,
            raw_metric.tier.as_ref(),
            "tier",
            &["primary", "supporting"],
            "supporting",
        );
        let unit = self.choice(
            &file.path,
            &file.text,
            raw_metric.unit.as_ref(),
            "unit",
            &["count", "currency", "percent", "ratio", "duration"],
            "count",
        );
        let good = self.choice(
            &file.path,
            &file.text,
            raw_metric.good.as_ref(),
            "good",
            &["up", "down", "neutral"],
            "up",
        );
        let kind_name = self.choice(
            &file.path,
            &file.text,
            raw_metric.kind.as_ref(),
            "kind",
            &["simple", "ratio", "derived", "cumulative", "conversion"],
            "simple",
        );
        for week in raw_metric.targets.keys() {
            if !is_week_label(week) {
                self.report(&file.path, line, format!("target key `{week}` is not a week label"),
                    Some("write targets as \"2026-W01\" = 50000 (the first ISO week the target applies to)".into()));
            }
        }
        let mut metric = Metric {
            label: raw_metric
                .label
                .clone()
                .unwrap_or_else(|| name.replace('_', " ")),
            description: raw_metric.description.clone().unwrap_or_default(),
            source: source.clone().unwrap_or_default(),
            sources: source.iter().cloned().collect(),
            owner: raw_metric
                .owner
                .clone()
                .unwrap_or_else(|| "unassigned".into()),
            tier,
            unit,
            currency: raw_metric.currency.clone(),
            good,
            kind: MetricKind::Derived {
                expression: String::new(),
            },
            dimensions: raw_metric
                .dimensions
                .iter()
                .map(|d| d.get_ref().clone())
                .collect(),
            targets: raw_metric.targets.clone(),
            path: file.path.clone(),
            line,
            hash: String::new(),
            name: name.clone(),
        };
        let needs_source = |this: &mut Self| {
            if source.is_none() {
                this.report(
                    &file.path,
                    line,
                    format!("metric `{name}` needs a `source`: the source of truth it reads"),
                    Some("for example source = \"crm\"; sources are configured in kpi.toml".into()),
                );
                return true;
            }
            false
        };
        match kind_name.as_str() {
            "ratio" => {
                let (Some(numerator), Some(denominator)) =
                    (&raw_metric.numerator, &raw_metric.denominator)
                else {
                    self.report(&file.path, line, format!("ratio metric `{name}` needs `numerator` and `denominator`"),
                        Some("name two other metrics, for example numerator = \"clicks\", denominator = \"impressions\"".into()));
                    return None;
                };
                metric.kind = MetricKind::Ratio {
                    numerator: numerator.get_ref().clone(),
                    denominator: denominator.get_ref().clone(),
                };
                let parts = vec![
                    (numerator.get_ref().clone(), at(numerator.span().start)),
                    (denominator.get_ref().clone(), at(denominator.span().start)),
                ];
                composites.push(Composite { metric, parts });
                None
            }
            "derived" => {
                let Some(expression) = &raw_metric.expression else {
                    self.report(
                        &file.path,
                        line,
                        format!("derived metric `{name}` needs an `expression`"),
                        Some("for example expression = \"spend / mqls\"".into()),
                    );
                    return None;
                };
                let expression_line = at(expression.span().start);
                match expression::Expression::parse(expression.get_ref()) {
                    Ok(parsed) => {
                        metric.kind = MetricKind::Derived {
                            expression: expression.get_ref().clone(),
                        };
                        let parts = parsed
                            .metrics()
                            .into_iter()
                            .map(|part| (part, expression_line))
                            .collect();
                        composites.push(Composite { metric, parts });
                    }
                    Err(error) => self.report(
                        &file.path,
                        expression_line,
                        format!("expression of `{name}`: {error}"),
                        None,
                    ),
                }
                None
            }
            "cumulative" => {
                let Some(of) = &raw_metric.of else {
                    self.report(
                        &file.path,
                        line,
                        format!("cumulative metric `{name}` needs `of`, the metric it accumulates"),
                        None,
                    );
                    return None;
                };
                let window = self.choice(
                    &file.path,
                    &file.text,
                    raw_metric.window.as_ref(),
                    "window",
                    &["running", "week", "month", "quarter", "year"],
                    "running",
                );
                metric.kind = MetricKind::Cumulative {
                    of: of.get_ref().clone(),
                    window,
                };
                composites.push(Composite {
                    metric,
                    parts: vec![(of.get_ref().clone(), at(of.span().start))],
                });
                None
            }
            "conversion" => {
                if needs_source(self) {
                    return None;
                }
                self.resolve_conversion(file, &raw_metric, metric).await
            }
            _ => {
                if needs_source(self) {
                    return None;
                }
                let (Some(measure), Some(table), Some(time_column)) = (
                    &raw_metric.measure,
                    &raw_metric.table,
                    &raw_metric.time_column,
                ) else {
                    self.report(&file.path, line, format!("simple metric `{name}` needs `measure`, `table` and `time_column`"),
                        Some("for example measure = \"SUM(spend)\", table = \"reporting.campaign_daily\", time_column = \"date\"".into()));
                    return None;
                };
                if !self
                    .check_simple(
                        &file.path,
                        &file.text,
                        &metric,
                        measure,
                        table,
                        time_column,
                        raw_metric.filter.as_ref(),
                        &raw_metric.dimensions,
                    )
                    .await
                {
                    return None;
                }
                metric.kind = MetricKind::Simple {
                    measure: measure.get_ref().clone(),
                    table: table.get_ref().to_ascii_lowercase(),
                    time_column: time_column.get_ref().clone(),
                    filter: raw_metric.filter.as_ref().map(|f| f.get_ref().clone()),
                };
                metric.hash = definition_hash(&metric);
                Some(metric)
            }
        }
    }

    /// A conversion metric becomes a generated view with one row per entity (when it first
    /// reached the first step, whether it reached the second within the window) and an
    /// average over that view.
    async fn resolve_conversion(
        &mut self,
        file: &SourceFile,
        raw_metric: &raw::RawMetric,
        mut metric: Metric,
    ) -> Option<Metric> {
        let line = metric.line;
        let (Some(entity), Some(from), Some(to), Some(within_days)) = (
            &raw_metric.entity,
            &raw_metric.from_step,
            &raw_metric.to_step,
            raw_metric.within_days,
        ) else {
            self.report(&file.path, line, format!("conversion metric `{}` needs `entity`, `from_step`, `to_step` and `within_days`", metric.name),
                Some("for example entity = \"contact_id\", from_step = { table = \"reporting.lifecycle_changes\", time_column = \"changed_at\", filter = \"to_stage = 'mql'\" }, to_step = { ... }, within_days = 30".into()));
            return None;
        };
        let mut ok = true;
        for (step, key) in [(from, "from_step"), (to, "to_step")] {
            let step_line = line_of(&file.text, step.span().start);
            let table = step.get_ref().table.to_ascii_lowercase();
            let known = match table.split_once('.') {
                Some((REPORTING_SCHEMA, view)) => self.view_sources.contains_key(view),
                Some(_) => self.tables.contains(&table),
                None => false,
            };
            if !known {
                self.report(
                    &file.path,
                    step_line,
                    format!("{key} of `{}` reads unknown table `{table}`", metric.name),
                    Some(self.table_hint(&table)),
                );
                ok = false;
                continue;
            }
            let foreign: Vec<String> = self
                .sources_of(&format!("SELECT * FROM {table}"))
                .into_iter()
                .filter(|s| *s != metric.source)
                .collect();
            if !foreign.is_empty() {
                self.report(
                    &file.path,
                    step_line,
                    format!(
                        "metric `{}` has source of truth `{}` but `{table}` reads source(s) {}",
                        metric.name,
                        metric.source,
                        foreign.join(", ")
                    ),
                    Some("a metric may only read tables of its own source".into()),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let (from, to) = (from.get_ref(), to.get_ref());
        let dimensions: String = metric.dimensions.iter().map(|d| format!(", {d}")).collect();
        let a_dimensions: String = metric
            .dimensions
            .iter()
            .map(|d| format!(", a.{d}"))
            .collect();
        let entity = entity.get_ref();
        let sql = format!(
            "WITH step_a AS (\n    SELECT {entity} AS __entity, {a_time} AS __at{dimensions},\n           ROW_NUMBER() OVER (PARTITION BY {entity} ORDER BY {a_time}) AS __n\n    FROM {a_table}\n    WHERE {a_filter}\n), step_b AS (\n    SELECT {entity} AS __entity, {b_time} AS __at\n    FROM {b_table}\n    WHERE {b_filter}\n)\nSELECT a.__entity, a.__at{a_dimensions},\n       MAX(CASE WHEN b.__at >= a.__at AND b.__at <= a.__at + INTERVAL '{within_days} days' THEN 1.0 ELSE 0.0 END) AS __converted\nFROM step_a AS a\nLEFT JOIN step_b AS b ON a.__entity = b.__entity\nWHERE a.__n = 1\nGROUP BY a.__entity, a.__at{a_dimensions}",
            a_time = from.time_column,
            a_table = from.table,
            a_filter = from.filter.as_deref().unwrap_or("TRUE"),
            b_time = to.time_column,
            b_table = to.table,
            b_filter = to.filter.as_deref().unwrap_or("TRUE"),
        );
        let view = format!("_conversion_{}", metric.name);
        if let Err(error) = self.sandbox.add_view(&view, &sql).await {
            self.report(
                &file.path,
                line,
                format!(
                    "conversion metric `{}` does not plan: {}",
                    metric.name,
                    first_line(&error.message)
                ),
                None,
            );
            return None;
        }
        self.view_sources
            .insert(view.clone(), BTreeSet::from([metric.source.clone()]));
        self.generated_views.push(ViewDef {
            name: view.clone(),
            sql,
        });
        metric.kind = MetricKind::Conversion {
            entity: entity.clone(),
            from_table: from.table.to_ascii_lowercase(),
            to_table: to.table.to_ascii_lowercase(),
            within_days,
            view: format!("{REPORTING_SCHEMA}.{view}"),
        };
        metric.hash = definition_hash(&metric);
        Some(metric)
    }

    /// Resolves ratio, derived and cumulative metrics once their parts are known, in
    /// dependency order; what is left refers to unknown metrics or to itself.
    fn resolve_composites(
        &mut self,
        mut pending: Vec<Composite>,
        metrics: &mut BTreeMap<String, Metric>,
    ) {
        loop {
            let before = pending.len();
            let mut waiting = Vec::new();
            for composite in pending {
                if composite
                    .parts
                    .iter()
                    .all(|(part, _)| metrics.contains_key(part))
                {
                    if let Some(metric) = self.finish_composite(composite, metrics) {
                        metrics.insert(metric.name.clone(), metric);
                    }
                } else {
                    waiting.push(composite);
                }
            }
            pending = waiting;
            if pending.len() == before {
                break;
            }
        }
        let waiting_names: BTreeSet<String> =
            pending.iter().map(|c| c.metric.name.clone()).collect();
        for composite in pending {
            for (part, line) in &composite.parts {
                if metrics.contains_key(part) {
                    continue;
                }
                let message = if waiting_names.contains(part) {
                    format!("metric `{}` depends on `{part}`, which depends back on it (or on a metric with errors)", composite.metric.name)
                } else if self.declared_metrics.contains(part) {
                    continue; // its own error was reported
                } else {
                    format!(
                        "metric `{}` refers to unknown metric `{part}`",
                        composite.metric.name
                    )
                };
                self.report(&composite.metric.path, *line, message, None);
            }
        }
    }

    fn finish_composite(
        &mut self,
        composite: Composite,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<Metric> {
        let Composite {
            mut metric, parts, ..
        } = composite;
        let mut sources = BTreeSet::new();
        for (part, line) in &parts {
            let part_metric = &metrics[part];
            sources.extend(part_metric.sources.iter().cloned());
            for dimension in &metric.dimensions {
                if !part_metric.dimensions.contains(dimension) {
                    self.report(&metric.path, *line, format!(
                        "metric `{}` allows dimension `{dimension}`, but its part `{part}` does not", metric.name),
                        Some(format!("`{part}` allows: {}", part_metric.dimensions.join(", "))));
                    return None;
                }
            }
            if let MetricKind::Cumulative { .. } = metric.kind {
                let additive = matches!(&part_metric.kind, MetricKind::Simple { measure, .. }
                    if { let m = measure.trim_start().to_ascii_uppercase(); m.starts_with("SUM(") || m.starts_with("COUNT(") });
                if !additive {
                    self.report(&metric.path, *line, format!(
                        "cumulative metric `{}` accumulates `{part}`, which is not a SUM or COUNT simple metric", metric.name),
                        Some("only additive metrics can be summed over days".into()));
                    return None;
                }
            }
        }
        if !metric.source.is_empty() && !sources.contains(&metric.source) {
            self.report(&metric.path, metric.line, format!(
                "metric `{}` declares source `{}` but its parts read {}", metric.name, metric.source,
                sources.iter().cloned().collect::<Vec<_>>().join(", ")),
                Some("drop `source` (a composite metric shows its parts' sources) or name one of them".into()));
            return None;
        }
        if metric.source.is_empty() {
            metric.source = sources.iter().next().cloned().unwrap_or_default();
        }
        metric.sources = sources.into_iter().collect();
        metric.hash = definition_hash(&metric);
        Some(metric)
    }

    fn choice(
        &mut self,
        path: &Path,
        text: &str,
        value: Option<&Spanned<String>>,
        key: &str,
        allowed: &[&str],
        default: &str,
    ) -> String {
        match value {
            None => default.to_string(),
            Some(value) if allowed.contains(&value.get_ref().as_str()) => value.get_ref().clone(),
            Some(value) => {
                self.report(
                    path,
                    line_of(text, value.span().start),
                    format!("`{key}` is `{}`", value.get_ref()),
                    Some(format!("use one of: {}", allowed.join(", "))),
                );
                default.to_string()
            }
        }
    }

    /// Plans each SQL piece of a simple metric separately so errors point at the right line.
    // The pieces are the raw metric's spanned fields; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn check_simple(
        &mut self,
        path: &Path,
        text: &str,
        metric: &Metric,
        measure: &Spanned<String>,
        table: &Spanned<String>,
        time_column: &Spanned<String>,
        filter: Option<&Spanned<String>>,
        dimensions: &[Spanned<String>],
    ) -> bool {
        let table_name = table.get_ref().to_ascii_lowercase();
        let table_line = line_of(text, table.span().start);
        let known = match table_name.split_once('.') {
            Some((REPORTING_SCHEMA, view)) => self.view_sources.contains_key(view),
            Some(_) => self.tables.contains(&table_name),
            None => false,
        };
        if !known {
            let attribution = format!(
                "{REPORTING_SCHEMA}.{}",
                crate::attribution::table::TABLE_NAME
            );
            let hint = if table_name == attribution {
                format!(
                    "{attribution} exists when {} and {} (named under [attribution] in kpi.toml) are defined; see README \"Attribution\"",
                    self.config.attribution.touches, self.config.attribution.conversions
                )
            } else if table_name.starts_with("reporting.") {
                "views are the files in queries/ (reporting.<file stem>)".to_string()
            } else {
                self.table_hint(&table_name)
            };
            self.report(
                path,
                table_line,
                format!(
                    "metric `{}` reads unknown table `{table_name}`",
                    metric.name
                ),
                Some(hint),
            );
            return false;
        }
        let sources = self.sources_of(&format!("SELECT * FROM {table_name}"));
        let foreign: Vec<&String> = sources
            .iter()
            .filter(|source| **source != metric.source)
            .collect();
        // An unknown source was reported already; do not report it again as a mismatch.
        if !foreign.is_empty() && self.config.sources.contains_key(&metric.source) {
            let list: Vec<&str> = foreign.iter().map(|s| s.as_str()).collect();
            self.report(path, table_line, format!(
                "metric `{}` has source of truth `{}` but `{table_name}` reads source(s) {}",
                metric.name, metric.source, list.join(", ")),
                Some("a metric may only read tables of its own source; use a derived metric to combine sources".into()));
            return false;
        }
        let mut ok = true;
        let checks: Vec<(String, usize, String)> = {
            let mut checks = vec![
                (
                    format!("SELECT {} FROM {table_name}", measure.get_ref()),
                    line_of(text, measure.span().start),
                    "measure".to_string(),
                ),
                (
                    format!("SELECT {} FROM {table_name}", time_column.get_ref()),
                    line_of(text, time_column.span().start),
                    "time_column".to_string(),
                ),
            ];
            if let Some(filter) = filter {
                checks.push((
                    format!("SELECT 1 FROM {table_name} WHERE {}", filter.get_ref()),
                    line_of(text, filter.span().start),
                    "filter".to_string(),
                ));
            }
            for dimension in dimensions {
                checks.push((
                    format!(
                        "SELECT {} FROM {table_name} GROUP BY 1",
                        dimension.get_ref()
                    ),
                    line_of(text, dimension.span().start),
                    format!("dimension `{}`", dimension.get_ref()),
                ));
            }
            checks
        };
        for (sql, line, what) in checks {
            match self.sandbox.plan(&sql).await {
                Ok(plan) => {
                    if what == "time_column" {
                        let data_type = plan.schema().field(0).data_type().clone();
                        if !matches!(
                            data_type,
                            arrow::datatypes::DataType::Date32
                                | arrow::datatypes::DataType::Date64
                                | arrow::datatypes::DataType::Timestamp(..)
                        ) {
                            ok = false;
                            self.report(path, line, format!("time_column `{}` of `{table_name}` is {data_type}, not a date or timestamp", time_column.get_ref()), None);
                        }
                    }
                }
                Err(error) => {
                    ok = false;
                    self.report(
                        path,
                        line,
                        format!(
                            "{what} of metric `{}` does not plan against {table_name}: {}",
                            metric.name,
                            first_line(&error.message)
                        ),
                        None,
                    );
                }
            }
        }
        ok
    }

    fn resolve_dashboards<'f>(
        &mut self,
        files: impl Iterator<Item = &'f SourceFile>,
        metrics: &BTreeMap<String, Metric>,
    ) -> BTreeMap<String, Dashboard> {
        let mut dashboards = BTreeMap::new();
        for file in files {
            let name = file
                .path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let parsed: raw::RawDashboard = match toml::from_str(&file.text) {
                Ok(parsed) => parsed,
                Err(error) => {
                    let line = error
                        .span()
                        .map(|span| line_of(&file.text, span.start))
                        .unwrap_or(1);
                    self.report(&file.path, line, error.message().to_string(), None);
                    continue;
                }
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                self.report(&file.path, 1, format!("dashboard name `{name}` is not URL-safe"),
                    Some("name the file with lowercase letters, digits and `-`, such as weekly-marketing.toml".into()));
                continue;
            }
            if let Some(dashboard) = self.resolve_dashboard(file, name.clone(), parsed, metrics) {
                dashboards.insert(name, dashboard);
            }
        }
        dashboards
    }
}

impl Resolver<'_> {
    /// Validates one dashboard's references, charts and settings; reports every problem.
    fn resolve_dashboard(
        &mut self,
        file: &SourceFile,
        name: String,
        parsed: raw::RawDashboard,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<Dashboard> {
        let problems_before = self.problems.len();
        let at = |span: std::ops::Range<usize>| line_of(&file.text, span.start);
        let known = |this: &mut Self, reference: &Spanned<String>| -> Option<String> {
            let metric = reference.get_ref();
            if metrics.contains_key(metric) {
                return Some(metric.clone());
            }
            if !this.declared_metrics.contains(metric) {
                this.report(
                    &file.path,
                    at(reference.span()),
                    format!("dashboard `{name}` uses unknown metric `{metric}`"),
                    Some("metrics are declared in metrics/*.toml".into()),
                );
            }
            None
        };
        let list = |this: &mut Self, references: &[Spanned<String>]| -> Vec<String> {
            references.iter().filter_map(|r| known(this, r)).collect()
        };
        let primary = list(self, &parsed.primary);
        let mut supporting = list(self, &parsed.supporting);
        let mut sections: Vec<Section> = parsed
            .section
            .iter()
            .map(|section| Section {
                title: section.title.clone(),
                metrics: list(self, &section.metrics),
            })
            .collect();
        if sections.is_empty() && !supporting.is_empty() {
            sections.push(Section {
                title: "Supporting KPIs".into(),
                metrics: supporting.clone(),
            });
        }
        // Sections list the supporting KPIs when `supporting` itself is left out.
        if supporting.is_empty() {
            supporting = sections.iter().flat_map(|s| s.metrics.clone()).collect();
        }
        let has_dimension = |this: &mut Self, metric: &str, by: &Spanned<String>| {
            let ok = metrics
                .get(metric)
                .is_some_and(|m| m.dimensions.contains(by.get_ref()));
            if !ok && metrics.contains_key(metric) {
                this.report(
                    &file.path,
                    at(by.span()),
                    format!("metric `{metric}` has no dimension `{}`", by.get_ref()),
                    Some(format!(
                        "its dimensions: {}",
                        metrics[metric].dimensions.join(", ")
                    )),
                );
            }
        };
        let mut charts = Vec::new();
        let mut chart_names = BTreeSet::new();
        for chart in &parsed.chart {
            let chart_name = chart.name.get_ref().clone();
            let line = at(chart.name.span());
            if !chart_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                || chart_name.is_empty()
            {
                self.report(
                    &file.path,
                    line,
                    format!("chart name `{chart_name}` is not URL-safe"),
                    Some("use lowercase letters, digits and `-`, such as pipeline-trend".into()),
                );
                continue;
            }
            if !chart_names.insert(chart_name.clone()) {
                self.report(
                    &file.path,
                    line,
                    format!("duplicate chart name `{chart_name}`"),
                    None,
                );
                continue;
            }
            let metric = chart.metric.as_ref().and_then(|m| known(self, m));
            let kind = match chart.kind.get_ref().as_str() {
                "trend" => metric.clone().map(|metric| ChartKind::Trend { metric }),
                "breakdown" => match (&metric, &chart.by) {
                    (Some(metric), Some(by)) => {
                        has_dimension(self, metric, by);
                        Some(ChartKind::Breakdown {
                            metric: metric.clone(),
                            by: by.get_ref().clone(),
                        })
                    }
                    (_, None) => {
                        self.report(
                            &file.path,
                            line,
                            format!("breakdown chart `{chart_name}` needs `by`"),
                            Some("for example by = \"channel\"".into()),
                        );
                        None
                    }
                    _ => None,
                },
                "funnel" => {
                    let steps = list(self, &chart.metrics);
                    if chart.metrics.len() < 2 {
                        self.report(
                            &file.path,
                            line,
                            format!("funnel chart `{chart_name}` needs at least two `metrics`"),
                            None,
                        );
                        None
                    } else {
                        Some(ChartKind::Funnel { metrics: steps })
                    }
                }
                other => {
                    self.report(
                        &file.path,
                        at(chart.kind.span()),
                        format!("unknown chart kind `{other}`"),
                        Some("use trend, breakdown or funnel".into()),
                    );
                    None
                }
            };
            if matches!(chart.kind.get_ref().as_str(), "trend" | "breakdown")
                && chart.metric.is_none()
            {
                self.report(
                    &file.path,
                    line,
                    format!("chart `{chart_name}` needs a `metric`"),
                    None,
                );
            }
            if let Some(kind) = kind {
                let title = chart.title.clone().unwrap_or_else(|| match &kind {
                    ChartKind::Trend { metric } => metrics
                        .get(metric)
                        .map(|m| m.label.clone())
                        .unwrap_or_default(),
                    ChartKind::Breakdown { metric, by } => format!(
                        "{} by {by}",
                        metrics
                            .get(metric)
                            .map(|m| m.label.as_str())
                            .unwrap_or_default()
                    ),
                    ChartKind::Funnel { .. } => "Funnel".to_string(),
                });
                charts.push(Chart {
                    name: chart_name,
                    title,
                    kind,
                });
            }
        }
        let breakdown = parsed.breakdown.as_ref().map(|b| {
            let columns = list(self, &b.metrics);
            for metric in &columns {
                has_dimension(self, metric, &b.by);
            }
            Breakdown {
                by: b.by.get_ref().clone(),
                metrics: columns,
            }
        });
        let attribution_comparison = parsed.attribution_comparison.as_ref().and_then(|m| {
            let metric = known(self, m)?;
            if !reads_attribution(metrics, &metrics[&metric]) {
                self.report(
                    &file.path,
                    at(m.span()),
                    format!(
                        "attribution_comparison `{metric}` does not read reporting.attribution"
                    ),
                    Some("choose an attributed metric such as attributed_pipeline".into()),
                );
                return None;
            }
            Some(metric)
        });
        let reconcile = parsed
            .reconcile
            .iter()
            .filter_map(|r| {
                let left = known(self, &r.left);
                let right = known(self, &r.right);
                let (left, right) = (left?, right?);
                has_dimension(self, &left, &r.by);
                has_dimension(self, &right, &r.by);
                Some(Reconcile {
                    label: r.label.clone(),
                    left,
                    right,
                    by: r.by.get_ref().clone(),
                    tolerance: r.tolerance.unwrap_or(0.2),
                })
            })
            .collect();
        let mut compare = Vec::new();
        for item in parsed.compare.iter().flatten() {
            if ["previous", "year_ago", "trailing_4"].contains(&item.get_ref().as_str()) {
                compare.push(item.get_ref().clone());
            } else {
                self.report(
                    &file.path,
                    at(item.span()),
                    format!("unknown comparison `{}`", item.get_ref()),
                    Some("use previous, year_ago or trailing_4".into()),
                );
            }
        }
        if parsed.compare.is_none() {
            compare = vec!["previous".into(), "year_ago".into()];
        }
        let (model, lookback) = match &parsed.attribution {
            Some(choice) => (
                choice.model.as_ref().map(|m| m.get_ref().clone()),
                choice.lookback.as_ref().map(|l| l.get_ref().clone()),
            ),
            None => (None, None),
        };
        if let Err(message) = self
            .config
            .attribution
            .settings(model.as_deref(), lookback.as_deref())
        {
            let line = parsed
                .attribution
                .as_ref()
                .and_then(|c| c.model.as_ref().or(c.lookback.as_ref()))
                .map(|s| at(s.span()))
                .unwrap_or(1);
            self.report(&file.path, line, format!("attribution: {message}"), None);
        }
        let trend_weeks = match &parsed.trend_weeks {
            Some(weeks) if !(2..=104).contains(weeks.get_ref()) => {
                self.report(
                    &file.path,
                    at(weeks.span()),
                    format!("trend_weeks = {} is out of range", weeks.get_ref()),
                    Some("use 2 to 104 weeks".into()),
                );
                13
            }
            Some(weeks) => *weeks.get_ref(),
            None => 13,
        };
        let thresholds = Thresholds {
            change: parsed
                .thresholds
                .as_ref()
                .and_then(|t| t.change)
                .unwrap_or(0.1),
            behind_target: parsed
                .thresholds
                .as_ref()
                .and_then(|t| t.behind_target)
                .unwrap_or(0.95),
        };
        let mut email_to = Vec::new();
        let mut schedule = None;
        if let Some(email) = &parsed.email {
            for recipient in &email.to {
                if recipient
                    .get_ref()
                    .parse::<lettre::message::Mailbox>()
                    .is_err()
                {
                    self.report(
                        &file.path,
                        at(recipient.span()),
                        format!("`{}` is not an email address", recipient.get_ref()),
                        Some("write it as name@example.com or \"Name <name@example.com>\"".into()),
                    );
                } else {
                    email_to.push(recipient.get_ref().clone());
                }
            }
            if let Some(text) = &email.schedule {
                match Schedule::parse(text.get_ref()) {
                    Ok(parsed) => schedule = Some(parsed),
                    Err(message) => self.report(&file.path, at(text.span()), message, None),
                }
                if email.to.is_empty() {
                    self.report(
                        &file.path,
                        at(text.span()),
                        "a schedule needs recipients: add `to = [...]` under [email]",
                        None,
                    );
                }
            }
        }
        if self.problems.len() > problems_before {
            return None;
        }
        let mut hasher = Sha256::new();
        hasher.update(file.text.as_bytes());
        Some(Dashboard {
            name,
            title: parsed.title,
            description: parsed.description.unwrap_or_default(),
            audience: parsed.audience.unwrap_or_default(),
            primary,
            supporting,
            attribution_model: model,
            attribution_lookback: lookback,
            compare,
            trend_weeks,
            sections,
            charts,
            breakdown,
            attribution_comparison,
            reconcile,
            thresholds,
            email_to,
            schedule,
            hash: hex(&hasher.finalize()[..8]),
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
mod tests;

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
