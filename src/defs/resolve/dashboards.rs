//! Dashboards: `dashboards/*.toml` → validated [`Dashboard`]s: every metric reference,
//! dimension, chart, comparison, attribution choice, threshold and email setting checked.
//!
//! Each part of a dashboard has its own function over a [`Scope`] (the file, the dashboard's
//! name and the metrics known); every problem is reported, and a dashboard with any problem
//! is left out of the registry.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::Resolver;
use crate::attribution::Settings;
use crate::config::line_of;
use crate::defs::{
    raw, reads_attribution, Breakdown, Chart, ChartKind, ChartType, Choice, Comparison, Dashboard,
    Metric, Reconcile, Schedule, Section, SourceFile, Thresholds,
};
use crate::digest::hex;

/// Weeks in sparklines and trend charts when a dashboard does not say.
const DEFAULT_TREND_WEEKS: u32 = 13;

/// What every check of one dashboard needs.
#[derive(Clone, Copy)]
struct Scope<'s> {
    file: &'s SourceFile,
    name: &'s str,
    metrics: &'s BTreeMap<String, Metric>,
}

impl Scope<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        line_of(&self.file.text, span.start)
    }
}

impl Resolver<'_> {
    pub(super) fn resolve_dashboards<'f>(
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
            let Some(parsed) = self.parse_toml::<raw::RawDashboard>(file) else {
                continue;
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                self.report(&file.path, 1, format!("dashboard name `{name}` is not URL-safe"),
                    Some("name the file with lowercase letters, digits and `-`, such as weekly-marketing.toml".into()));
                continue;
            }
            let scope = Scope {
                file,
                name: &name,
                metrics,
            };
            if let Some(dashboard) = self.resolve_dashboard(scope, parsed) {
                dashboards.insert(name, dashboard);
            }
        }
        dashboards
    }

    /// Validates one dashboard's references, charts and settings; reports every problem.
    fn resolve_dashboard(
        &mut self,
        scope: Scope<'_>,
        parsed: raw::RawDashboard,
    ) -> Option<Dashboard> {
        let problems_before = self.problems.len();
        let primary = self.known_list(scope, &parsed.primary);
        let (supporting, sections) = self.resolve_sections(scope, &parsed);
        let charts = self.resolve_charts(scope, &parsed.chart);
        let breakdown = parsed.breakdown.as_ref().map(|b| {
            let columns = self.known_list(scope, &b.metrics);
            for metric in &columns {
                self.check_dimension(scope, metric, &b.by);
            }
            Breakdown {
                by: b.by.get_ref().clone(),
                metrics: columns,
            }
        });
        let attribution_comparison = parsed
            .attribution_comparison
            .as_ref()
            .and_then(|m| self.resolve_attribution_comparison(scope, m));
        let reconcile = parsed
            .reconcile
            .iter()
            .filter_map(|r| self.resolve_reconcile(scope, r))
            .collect();
        let compare = self.resolve_compare(scope, parsed.compare.as_deref());
        let attribution = self.resolve_attribution_choice(scope, parsed.attribution.as_ref());
        let trend_weeks = self.resolve_trend_weeks(scope, parsed.trend_weeks.as_ref());
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
        let (email_to, schedule) = self.resolve_email(scope, parsed.email.as_ref());
        let alerts = self.resolve_alerts(scope.file, scope.metrics, &parsed.alert);
        if self.problems.len() > problems_before {
            return None;
        }
        Some(Dashboard {
            name: scope.name.to_string(),
            title: parsed.title,
            description: parsed.description.unwrap_or_default(),
            audience: parsed.audience.unwrap_or_default(),
            primary,
            supporting,
            attribution: attribution?,
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
            alerts,
            hash: hex(&Sha256::digest(scope.file.text.as_bytes())[..8]),
        })
    }

    /// Returns the metric a dashboard names, or reports it as unknown (once: a metric whose
    /// own definition has errors was reported where it is defined).
    fn known(&mut self, scope: Scope<'_>, reference: &Spanned<String>) -> Option<String> {
        let metric = reference.get_ref();
        if scope.metrics.contains_key(metric) {
            return Some(metric.clone());
        }
        if !self.declared_metrics.contains(metric) {
            self.report(
                &scope.file.path,
                scope.line(reference.span()),
                format!("dashboard `{}` uses unknown metric `{metric}`", scope.name),
                Some("metrics are declared in metrics/*.toml".into()),
            );
        }
        None
    }

    fn known_list(&mut self, scope: Scope<'_>, references: &[Spanned<String>]) -> Vec<String> {
        references
            .iter()
            .filter_map(|r| self.known(scope, r))
            .collect()
    }

    /// Reports a dimension the (known) metric does not allow.
    fn check_dimension(&mut self, scope: Scope<'_>, metric: &str, by: &Spanned<String>) {
        let Some(definition) = scope.metrics.get(metric) else {
            return;
        };
        if !definition.dimensions.contains(by.get_ref()) {
            self.report(
                &scope.file.path,
                scope.line(by.span()),
                format!("metric `{metric}` has no dimension `{}`", by.get_ref()),
                Some(format!(
                    "its dimensions: {}",
                    definition.dimensions.join(", ")
                )),
            );
        }
    }

    /// The supporting KPIs and their sections: one "Supporting KPIs" section when none is
    /// given; the sections' metrics when `supporting` is left out.
    fn resolve_sections(
        &mut self,
        scope: Scope<'_>,
        parsed: &raw::RawDashboard,
    ) -> (Vec<String>, Vec<Section>) {
        let mut supporting = self.known_list(scope, &parsed.supporting);
        let mut sections: Vec<Section> = parsed
            .section
            .iter()
            .map(|section| Section {
                title: section.title.clone(),
                metrics: self.known_list(scope, &section.metrics),
            })
            .collect();
        if sections.is_empty() && !supporting.is_empty() {
            sections.push(Section {
                title: "Supporting KPIs".into(),
                metrics: supporting.clone(),
            });
        }
        if supporting.is_empty() {
            supporting = sections.iter().flat_map(|s| s.metrics.clone()).collect();
        }
        (supporting, sections)
    }

    fn resolve_charts(&mut self, scope: Scope<'_>, raw_charts: &[raw::RawChart]) -> Vec<Chart> {
        let mut charts = Vec::new();
        let mut names = BTreeSet::new();
        for chart in raw_charts {
            let name = chart.name.get_ref().clone();
            let line = scope.line(chart.name.span());
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                self.report(
                    &scope.file.path,
                    line,
                    format!("chart name `{name}` is not URL-safe"),
                    Some("use lowercase letters, digits and `-`, such as pipeline-trend".into()),
                );
                continue;
            }
            if !names.insert(name.clone()) {
                self.report(
                    &scope.file.path,
                    line,
                    format!("duplicate chart name `{name}`"),
                    None,
                );
                continue;
            }
            if let Some(kind) = self.resolve_chart_kind(scope, chart, &name, line) {
                let title = chart
                    .title
                    .clone()
                    .unwrap_or_else(|| default_chart_title(&kind, scope.metrics));
                charts.push(Chart { name, title, kind });
            }
        }
        charts
    }

    fn resolve_chart_kind(
        &mut self,
        scope: Scope<'_>,
        chart: &raw::RawChart,
        name: &str,
        line: usize,
    ) -> Option<ChartKind> {
        let Some(chart_type) = ChartType::from_name(chart.kind.get_ref()) else {
            self.report(
                &scope.file.path,
                scope.line(chart.kind.span()),
                format!("unknown chart kind `{}`", chart.kind.get_ref()),
                Some(format!("use {}", ChartType::names().join(", "))),
            );
            return None;
        };
        if chart_type != ChartType::Funnel && chart.metric.is_none() {
            self.report(
                &scope.file.path,
                line,
                format!("chart `{name}` needs a `metric`"),
                None,
            );
        }
        let metric = chart.metric.as_ref().and_then(|m| self.known(scope, m));
        match chart_type {
            ChartType::Trend => metric.map(|metric| ChartKind::Trend { metric }),
            ChartType::Breakdown => {
                let Some(by) = &chart.by else {
                    self.report(
                        &scope.file.path,
                        line,
                        format!("breakdown chart `{name}` needs `by`"),
                        Some("for example by = \"channel\"".into()),
                    );
                    return None;
                };
                let metric = metric?;
                self.check_dimension(scope, &metric, by);
                Some(ChartKind::Breakdown {
                    metric,
                    by: by.get_ref().clone(),
                })
            }
            ChartType::Funnel => {
                let steps = self.known_list(scope, &chart.metrics);
                if chart.metrics.len() < 2 {
                    self.report(
                        &scope.file.path,
                        line,
                        format!("funnel chart `{name}` needs at least two `metrics`"),
                        None,
                    );
                    return None;
                }
                Some(ChartKind::Funnel { metrics: steps })
            }
        }
    }

    fn resolve_attribution_comparison(
        &mut self,
        scope: Scope<'_>,
        reference: &Spanned<String>,
    ) -> Option<String> {
        let metric = self.known(scope, reference)?;
        if !reads_attribution(scope.metrics, &scope.metrics[&metric]) {
            self.report(
                &scope.file.path,
                scope.line(reference.span()),
                format!("attribution_comparison `{metric}` does not read reporting.attribution"),
                Some("choose an attributed metric such as attributed_pipeline".into()),
            );
            return None;
        }
        Some(metric)
    }

    fn resolve_reconcile(
        &mut self,
        scope: Scope<'_>,
        reconcile: &raw::RawReconcile,
    ) -> Option<Reconcile> {
        let left = self.known(scope, &reconcile.left);
        let right = self.known(scope, &reconcile.right);
        let (left, right) = (left?, right?);
        self.check_dimension(scope, &left, &reconcile.by);
        self.check_dimension(scope, &right, &reconcile.by);
        Some(Reconcile {
            label: reconcile.label.clone(),
            left,
            right,
            by: reconcile.by.get_ref().clone(),
            tolerance: reconcile.tolerance.unwrap_or(0.2),
        })
    }

    /// The tiles' comparisons: `previous` and `year_ago` when the dashboard names none.
    fn resolve_compare(
        &mut self,
        scope: Scope<'_>,
        compare: Option<&[Spanned<String>]>,
    ) -> Vec<Comparison> {
        let Some(items) = compare else {
            return vec![Comparison::Previous, Comparison::YearAgo];
        };
        let mut out = Vec::new();
        for item in items {
            match Comparison::parse(item.get_ref()) {
                Some(comparison) if !out.contains(&comparison) => out.push(comparison),
                Some(_) => {}
                None => self.report(
                    &scope.file.path,
                    scope.line(item.span()),
                    format!("unknown comparison `{}`", item.get_ref()),
                    Some("use previous, year_ago or trailing_4".into()),
                ),
            }
        }
        out
    }

    /// The report's attribution settings: kpi.toml's defaults with what the dashboard names.
    fn resolve_attribution_choice(
        &mut self,
        scope: Scope<'_>,
        choice: Option<&raw::RawAttributionChoice>,
    ) -> Option<Settings> {
        let model = choice.and_then(|c| c.model.as_ref());
        let lookback = choice.and_then(|c| c.lookback.as_ref());
        match self.config.attribution.settings(
            model.map(|m| m.get_ref().as_str()),
            lookback.map(|l| l.get_ref().as_str()),
        ) {
            Ok(settings) => Some(settings),
            Err(message) => {
                let line = model
                    .or(lookback)
                    .map(|s| scope.line(s.span()))
                    .unwrap_or(1);
                self.report(
                    &scope.file.path,
                    line,
                    format!("attribution: {message}"),
                    None,
                );
                None
            }
        }
    }

    fn resolve_trend_weeks(&mut self, scope: Scope<'_>, weeks: Option<&Spanned<u32>>) -> u32 {
        match weeks {
            Some(weeks) if !(2..=104).contains(weeks.get_ref()) => {
                self.report(
                    &scope.file.path,
                    scope.line(weeks.span()),
                    format!("trend_weeks = {} is out of range", weeks.get_ref()),
                    Some("use 2 to 104 weeks".into()),
                );
                DEFAULT_TREND_WEEKS
            }
            Some(weeks) => *weeks.get_ref(),
            None => DEFAULT_TREND_WEEKS,
        }
    }

    /// Recipients (each a valid address) and the schedule (which needs recipients).
    fn resolve_email(
        &mut self,
        scope: Scope<'_>,
        email: Option<&raw::RawDashboardEmail>,
    ) -> (Vec<String>, Option<Schedule>) {
        let Some(email) = email else {
            return (Vec::new(), None);
        };
        let mut recipients = Vec::new();
        for recipient in &email.to {
            if recipient
                .get_ref()
                .parse::<lettre::message::Mailbox>()
                .is_err()
            {
                self.report(
                    &scope.file.path,
                    scope.line(recipient.span()),
                    format!("`{}` is not an email address", recipient.get_ref()),
                    Some("write it as name@example.com or \"Name <name@example.com>\"".into()),
                );
            } else {
                recipients.push(recipient.get_ref().clone());
            }
        }
        let mut schedule = None;
        if let Some(text) = &email.schedule {
            match Schedule::parse(text.get_ref()) {
                Ok(parsed) => schedule = Some(parsed),
                Err(message) => {
                    self.report(&scope.file.path, scope.line(text.span()), message, None)
                }
            }
            if email.to.is_empty() {
                self.report(
                    &scope.file.path,
                    scope.line(text.span()),
                    "a schedule needs recipients: add `to = [...]` under [email]",
                    None,
                );
            }
        }
        (recipients, schedule)
    }
}

/// A chart's title when the file gives none: the metric's label (`... by <dimension>` for
/// breakdowns), or "Funnel".
fn default_chart_title(kind: &ChartKind, metrics: &BTreeMap<String, Metric>) -> String {
    let label = |metric: &str| {
        metrics
            .get(metric)
            .map(|m| m.label.clone())
            .unwrap_or_default()
    };
    match kind {
        ChartKind::Trend { metric } => label(metric),
        ChartKind::Breakdown { metric, by } => format!("{} by {by}", label(metric)),
        ChartKind::Funnel { .. } => "Funnel".to_string(),
    }
}
