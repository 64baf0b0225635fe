//! Metrics: `metrics/*.toml` → validated [`Metric`]s. Simple and conversion metrics are
//! planned against the landed schemas at once; composite metrics (ratio, derived, cumulative)
//! wait until every part is known.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use super::{definition_hash, first_line, is_week_label, Resolver};
use crate::config::{is_identifier, line_of};
use crate::defs::expression::Expression;
use crate::defs::{
    raw, CumulativeWindow, Good, KindName, Metric, MetricKind, SourceFile, Tier, Unit,
};
use crate::engine::safety::has_subquery;
use crate::engine::{ViewDef, REPORTING_SCHEMA};

/// The spanned SQL pieces of a simple metric, checked one by one.
#[derive(Clone, Copy)]
struct SimplePieces<'r> {
    measure: &'r Spanned<String>,
    table: &'r Spanned<String>,
    time_column: &'r Spanned<String>,
    filter: Option<&'r Spanned<String>>,
    dimensions: &'r [Spanned<String>],
}

/// What to do about a subquery in a metric's measure or filter.
const SUBQUERY_HINT: &str = "write the subquery into a view under queries/ (a join or a column \
                             there) and point the metric's table at that view";

/// A composite metric waiting for the metrics it uses.
struct Composite {
    metric: Metric,
    /// Metric names used, with the line that names them.
    parts: Vec<(String, usize)>,
}

impl Resolver<'_> {
    pub(super) async fn resolve_metrics<'f>(
        &mut self,
        files: impl Iterator<Item = &'f SourceFile>,
    ) -> BTreeMap<String, Metric> {
        let mut metrics: BTreeMap<String, Metric> = BTreeMap::new();
        let mut composites: Vec<Composite> = Vec::new();
        for file in files {
            let Some(parsed) = self.parse_toml::<raw::MetricFile>(file) else {
                continue;
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
        let metric = self.resolve_common(file, &raw_metric, metrics)?;
        let kind: KindName = self.choice(file, raw_metric.kind.as_ref(), "kind");
        match kind {
            KindName::Ratio => self.resolve_ratio(file, &raw_metric, metric, composites),
            KindName::Derived => self.resolve_derived(file, &raw_metric, metric, composites),
            KindName::Cumulative => self.resolve_cumulative(file, &raw_metric, metric, composites),
            KindName::Conversion => {
                self.require_source(file, &raw_metric, &metric)?;
                self.resolve_conversion(file, &raw_metric, metric).await
            }
            KindName::Simple => {
                self.require_source(file, &raw_metric, &metric)?;
                self.resolve_simple(file, &raw_metric, metric).await
            }
        }
    }

    /// Checks what every metric has (a valid, unique name; a known source; tier, unit, good
    /// direction; week-labelled targets) and returns the metric with its kind still open.
    fn resolve_common(
        &mut self,
        file: &SourceFile,
        raw_metric: &raw::RawMetric,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<Metric> {
        let name = raw_metric.name.get_ref().clone();
        let line = line_of(&file.text, raw_metric.name.span().start);
        self.check_metric_name(file, &name, line, metrics)?;
        let source = raw_metric
            .source
            .as_ref()
            .map(|source| source.get_ref().clone());
        if let Some(source_spanned) = &raw_metric.source {
            if !self.config.sources.contains_key(source_spanned.get_ref()) {
                let known: Vec<&str> = self.config.sources.keys().map(String::as_str).collect();
                self.report(
                    &file.path,
                    line_of(&file.text, source_spanned.span().start),
                    format!("unknown source `{}`", source_spanned.get_ref()),
                    Some(format!(
                        "configured sources in kpi.toml: {}",
                        known.join(", ")
                    )),
                );
            }
        }
        let tier: Tier = self.choice(file, raw_metric.tier.as_ref(), "tier");
        let unit: Unit = self.choice(file, raw_metric.unit.as_ref(), "unit");
        let good: Good = self.choice(file, raw_metric.good.as_ref(), "good");
        for week in raw_metric.targets.keys() {
            if !is_week_label(week) {
                self.report(&file.path, line, format!("target key `{week}` is not a week label"),
                    Some("write targets as \"2026-W01\" = 50000 (the first ISO week the target applies to)".into()));
            }
        }
        Some(Metric {
            label: raw_metric
                .label
                .clone()
                .unwrap_or_else(|| name.replace('_', " ")),
            description: raw_metric.description.clone().unwrap_or_default(),
            source: source.clone().unwrap_or_default(),
            sources: source.into_iter().collect(),
            owner: raw_metric
                .owner
                .clone()
                .unwrap_or_else(|| "unassigned".into()),
            tier,
            unit,
            currency: raw_metric.currency.clone(),
            good,
            // Replaced by the kind's own resolver before the metric leaves this module.
            kind: MetricKind::Ratio {
                numerator: String::new(),
                denominator: String::new(),
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
            name,
        })
    }

    /// Reports an invalid or repeated metric name; `None` when the metric must be skipped.
    fn check_metric_name(
        &mut self,
        file: &SourceFile,
        name: &str,
        line: usize,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<()> {
        if !is_identifier(name) {
            self.report(
                &file.path,
                line,
                format!("metric name `{name}` is not valid"),
                Some("use lowercase letters, digits and `_`, starting with a letter".into()),
            );
            return None;
        }
        let first_declaration = self.declared_metrics.insert(name.to_string());
        if let Some(first) = metrics.get(name) {
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
        Some(())
    }

    /// Simple and conversion metrics read tables, so they must name their source of truth.
    fn require_source(
        &mut self,
        file: &SourceFile,
        raw_metric: &raw::RawMetric,
        metric: &Metric,
    ) -> Option<()> {
        if raw_metric.source.is_some() {
            return Some(());
        }
        self.report(
            &file.path,
            metric.line,
            format!(
                "metric `{}` needs a `source`: the source of truth it reads",
                metric.name
            ),
            Some("for example source = \"crm\"; sources are configured in kpi.toml".into()),
        );
        None
    }

    fn resolve_ratio(
        &mut self,
        file: &SourceFile,
        raw_metric: &raw::RawMetric,
        mut metric: Metric,
        composites: &mut Vec<Composite>,
    ) -> Option<Metric> {
        let (Some(numerator), Some(denominator)) = (&raw_metric.numerator, &raw_metric.denominator)
        else {
            self.report(&file.path, metric.line, format!("ratio metric `{}` needs `numerator` and `denominator`", metric.name),
                Some("name two other metrics, for example numerator = \"clicks\", denominator = \"impressions\"".into()));
            return None;
        };
        metric.kind = MetricKind::Ratio {
            numerator: numerator.get_ref().clone(),
            denominator: denominator.get_ref().clone(),
        };
        let parts = [numerator, denominator]
            .iter()
            .map(|part| {
                (
                    part.get_ref().clone(),
                    line_of(&file.text, part.span().start),
                )
            })
            .collect();
        composites.push(Composite { metric, parts });
        None
    }

    fn resolve_derived(
        &mut self,
        file: &SourceFile,
        raw_metric: &raw::RawMetric,
        mut metric: Metric,
        composites: &mut Vec<Composite>,
    ) -> Option<Metric> {
        let Some(expression) = &raw_metric.expression else {
            self.report(
                &file.path,
                metric.line,
                format!("derived metric `{}` needs an `expression`", metric.name),
                Some("for example expression = \"spend / mqls\"".into()),
            );
            return None;
        };
        let expression_line = line_of(&file.text, expression.span().start);
        match Expression::parse(expression.get_ref()) {
            Ok(parsed) => {
                let parts = parsed
                    .metrics()
                    .into_iter()
                    .map(|part| (part, expression_line))
                    .collect();
                metric.kind = MetricKind::Derived {
                    expression: expression.get_ref().clone(),
                    parsed,
                };
                composites.push(Composite { metric, parts });
            }
            Err(error) => self.report(
                &file.path,
                expression_line,
                format!("expression of `{}`: {error}", metric.name),
                None,
            ),
        }
        None
    }

    fn resolve_cumulative(
        &mut self,
        file: &SourceFile,
        raw_metric: &raw::RawMetric,
        mut metric: Metric,
        composites: &mut Vec<Composite>,
    ) -> Option<Metric> {
        let Some(of) = &raw_metric.of else {
            self.report(
                &file.path,
                metric.line,
                format!(
                    "cumulative metric `{}` needs `of`, the metric it accumulates",
                    metric.name
                ),
                None,
            );
            return None;
        };
        let window: CumulativeWindow = self.choice(file, raw_metric.window.as_ref(), "window");
        metric.kind = MetricKind::Cumulative {
            of: of.get_ref().clone(),
            window,
        };
        composites.push(Composite {
            metric,
            parts: vec![(of.get_ref().clone(), line_of(&file.text, of.span().start))],
        });
        None
    }

    async fn resolve_simple(
        &mut self,
        file: &SourceFile,
        raw_metric: &raw::RawMetric,
        mut metric: Metric,
    ) -> Option<Metric> {
        let (Some(measure), Some(table), Some(time_column)) = (
            &raw_metric.measure,
            &raw_metric.table,
            &raw_metric.time_column,
        ) else {
            self.report(&file.path, metric.line, format!("simple metric `{}` needs `measure`, `table` and `time_column`", metric.name),
                Some("for example measure = \"SUM(spend)\", table = \"reporting.campaign_daily\", time_column = \"date\"".into()));
            return None;
        };
        let pieces = SimplePieces {
            measure,
            table,
            time_column,
            filter: raw_metric.filter.as_ref(),
            dimensions: &raw_metric.dimensions,
        };
        if !self.check_simple(file, &metric, &pieces).await {
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
            step_times: [from.time_column.clone(), to.time_column.clone()],
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

    /// Plans each SQL piece of a simple metric separately so errors point at the right line.
    async fn check_simple(
        &mut self,
        file: &SourceFile,
        metric: &Metric,
        pieces: &SimplePieces<'_>,
    ) -> bool {
        let table_name = pieces.table.get_ref().to_ascii_lowercase();
        let table_line = line_of(&file.text, pieces.table.span().start);
        if !self.check_simple_table(file, metric, &table_name, table_line) {
            return false;
        }
        let (path, text) = (file.path.as_path(), file.text.as_str());
        let time_column = pieces.time_column;
        let time_type_ok = |plan: &datafusion::logical_expr::LogicalPlan| {
            let data_type = plan.schema().field(0).data_type().clone();
            match matches!(
                data_type,
                arrow::datatypes::DataType::Date32
                    | arrow::datatypes::DataType::Date64
                    | arrow::datatypes::DataType::Timestamp(..)
            ) {
                true => Ok(()),
                false => Err(format!(
                    "time_column `{}` of `{table_name}` is {data_type}, not a date or timestamp",
                    time_column.get_ref()
                )),
            }
        };
        // Every piece in one query first (the time column first): when it plans, so does
        // each piece. Only a failure plans them one by one, to say which line is wrong.
        if let Ok(plan) = self.sandbox.plan(&whole_query(&table_name, pieces)).await {
            if let Err(message) = time_type_ok(&plan) {
                self.report(path, line_of(text, time_column.span().start), message, None);
                return false;
            }
            if has_subquery(&plan) {
                if !self
                    .report_subqueries(file, metric, &table_name, pieces)
                    .await
                {
                    // Neither piece alone shows it: say so at the measure, never drop silently.
                    self.report(
                        path,
                        line_of(text, pieces.measure.span().start),
                        format!("metric `{}` uses a subquery, which it cannot", metric.name),
                        Some(SUBQUERY_HINT.to_string()),
                    );
                }
                return false;
            }
            return true;
        }
        let mut ok = true;
        let checks = piece_queries(text, &table_name, pieces);
        for (sql, line, what) in checks {
            match self.sandbox.plan(&sql).await {
                Ok(plan) => {
                    if what == "time_column" {
                        if let Err(message) = time_type_ok(&plan) {
                            ok = false;
                            self.report(path, line, message, None);
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

    /// A measure or filter with a subquery plans as SQL but not as the metric queries kpi
    /// builds (each piece is an expression over one relation): says which one, and what to do.
    /// Returns whether it reported any.
    async fn report_subqueries(
        &mut self,
        file: &SourceFile,
        metric: &Metric,
        table_name: &str,
        pieces: &SimplePieces<'_>,
    ) -> bool {
        let mut reported = false;
        let mut checks = vec![(
            "measure",
            pieces.measure,
            format!("SELECT {} FROM {table_name}", pieces.measure.get_ref()),
        )];
        if let Some(filter) = pieces.filter {
            checks.push((
                "filter",
                filter,
                format!("SELECT 1 FROM {table_name} WHERE {}", filter.get_ref()),
            ));
        }
        for (what, piece, sql) in checks {
            let nested = match self.sandbox.plan(&sql).await {
                Ok(plan) => has_subquery(&plan),
                Err(_) => false,
            };
            if nested {
                reported = true;
                self.report(
                    &file.path,
                    line_of(&file.text, piece.span().start),
                    format!(
                        "{what} of metric `{}` uses a subquery, which a metric's {what} cannot",
                        metric.name
                    ),
                    Some(SUBQUERY_HINT.to_string()),
                );
            }
        }
        reported
    }

    /// The table of a simple metric must exist and read only the metric's source of truth.
    fn check_simple_table(
        &mut self,
        file: &SourceFile,
        metric: &Metric,
        table_name: &str,
        table_line: usize,
    ) -> bool {
        let path = file.path.as_path();
        let known = match table_name.split_once('.') {
            Some((REPORTING_SCHEMA, view)) => self.view_sources.contains_key(view),
            Some(_) => self.tables.contains(table_name),
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
                self.table_hint(table_name)
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
        let foreign: Vec<&str> = sources
            .iter()
            .filter(|source| **source != metric.source)
            .map(String::as_str)
            .collect();
        // An unknown source was reported already; do not report it again as a mismatch.
        if !foreign.is_empty() && self.config.sources.contains_key(&metric.source) {
            self.report(path, table_line, format!(
                "metric `{}` has source of truth `{}` but `{table_name}` reads source(s) {}",
                metric.name, metric.source, foreign.join(", ")),
                Some("a metric may only read tables of its own source; use a derived metric to combine sources".into()));
            return false;
        }
        true
    }
}

/// One query per SQL piece of a simple metric (measure, time column, filter, each dimension),
/// with the line of the piece and what to call it in an error.
/// A simple metric's pieces in one query, its time column first: `SELECT time, dimensions...,
/// measure FROM table WHERE filter GROUP BY time, dimensions...`.
fn whole_query(table_name: &str, pieces: &SimplePieces<'_>) -> String {
    let mut groups = vec![pieces.time_column.get_ref().as_str()];
    groups.extend(pieces.dimensions.iter().map(|d| d.get_ref().as_str()));
    let positions: Vec<String> = (1..=groups.len()).map(|i| i.to_string()).collect();
    let filter = pieces
        .filter
        .map(|filter| format!("\nWHERE ({}\n)", filter.get_ref()))
        .unwrap_or_default();
    format!(
        "SELECT {}, {}\nFROM {table_name}{filter}\nGROUP BY {}",
        groups.join(", "),
        pieces.measure.get_ref(),
        positions.join(", ")
    )
}

fn piece_queries(
    text: &str,
    table_name: &str,
    pieces: &SimplePieces<'_>,
) -> Vec<(String, usize, String)> {
    let at = |piece: &Spanned<String>| line_of(text, piece.span().start);
    let mut checks = vec![
        (
            format!("SELECT {} FROM {table_name}", pieces.measure.get_ref()),
            at(pieces.measure),
            "measure".to_string(),
        ),
        (
            format!("SELECT {} FROM {table_name}", pieces.time_column.get_ref()),
            at(pieces.time_column),
            "time_column".to_string(),
        ),
    ];
    if let Some(filter) = pieces.filter {
        checks.push((
            format!("SELECT 1 FROM {table_name} WHERE {}", filter.get_ref()),
            at(filter),
            "filter".to_string(),
        ));
    }
    for dimension in pieces.dimensions {
        checks.push((
            format!(
                "SELECT {} FROM {table_name} GROUP BY 1",
                dimension.get_ref()
            ),
            at(dimension),
            format!("dimension `{}`", dimension.get_ref()),
        ));
    }
    checks
}
