//! Each page as a function of domain values: gathers what its template shows (chart SVGs,
//! strings of dates) and renders it. No queries and no HTTP: handlers fetch, these render.

use std::collections::BTreeMap;

use minijinja::context;
use minijinja::value::Value;
use serde::Serialize;

use super::charts;
use super::html::{escape, render, safe};
use crate::defs::history::HistoryEntry;
use crate::defs::{Dashboard, Metric, MetricKind, Registry};
use crate::email::SendRecord;
use crate::metrics;
use crate::report::Report;
use crate::snapshot::{Difference, Snapshot};
use crate::Result;

/// The report page: one self-contained HTML document (inline CSS and SVG, no script, no
/// external request) that reads without JavaScript and prints on A4 or Letter.
///
/// Every number carries `data-metric`, `data-period` and `data-value` (the raw value, as the
/// API gives it); attributed numbers also `data-model` and `data-lookback`, sliced numbers
/// `data-dimension` and `data-dimension-value`. Changes carry `data-change` instead (they are
/// not metric values).
pub fn report_page(report: &Report) -> Result<String> {
    report_page_linked(report, "")
}

/// The report page whose links to its charts and exports carry `link_query` (the `?exp=&sig=`
/// of the signed link it was opened with), so they open too.
pub fn report_page_linked(report: &Report, link_query: &str) -> Result<String> {
    render(
        "report.html",
        report_context(report, context! { link_query => link_query }),
    )
}

/// What the live report says of a snapshot's numbers, for its banner.
pub enum LiveComparison<'a> {
    /// The same numbers.
    Same,
    /// These KPIs differ, and why.
    Different(&'a [Difference]),
    /// The live report cannot be computed now.
    Failed(&'a str),
    /// The dashboard no longer exists.
    Gone,
}

/// A snapshot's page: the frozen report with a banner (when it was taken, what replaced it,
/// what the live report now says differently).
pub fn snapshot_page(
    snapshot: &Snapshot,
    report: &Report,
    newer: &[Snapshot],
    live: LiveComparison<'_>,
) -> Result<String> {
    let (state, changes, error) = match live {
        LiveComparison::Same => ("same", &[][..], ""),
        LiveComparison::Different(changes) => ("different", changes, ""),
        LiveComparison::Failed(error) => ("failed", &[][..], error),
        LiveComparison::Gone => ("gone", &[][..], ""),
    };
    let banner = context! {
        snapshot => context! {
            id => snapshot.id,
            dashboard => snapshot.dashboard,
            week => snapshot.week,
            taken_at => snapshot.taken_at.to_rfc3339(),
            previous => snapshot.previous,
            definitions_version => snapshot.definitions_version,
        },
        newer => newer.iter().map(|s| context! { id => s.id, taken_at => s.taken_at.to_rfc3339() }).collect::<Vec<_>>(),
        live => state,
        changes => Value::from_serialize(changes),
        live_error => error,
    };
    render("snapshot.html", report_context(report, banner))
}

/// The report's template context: the model, each chart's SVG and each tile's sparkline.
fn report_context(report: &Report, extra: Value) -> Value {
    let chart_svgs: BTreeMap<&str, Value> = report
        .charts
        .iter()
        .map(|chart| {
            let svg = charts::svg(chart)
                .unwrap_or_else(|e| format!("<p class=\"reason\">{}</p>", escape(&e)));
            (chart.name.as_str(), safe(svg))
        })
        .collect();
    let sparklines: BTreeMap<&str, Value> = report
        .primary
        .iter()
        .chain(report.sections.iter().flat_map(|s| s.tiles.iter()))
        .filter(|tile| !tile.sparkline.is_empty())
        .filter_map(|tile| {
            let values: Vec<Option<f64>> = tile.sparkline.iter().map(|(_, v)| *v).collect();
            let svg = charts::sparkline(&values).ok()?;
            Some((tile.metric.as_str(), safe(svg)))
        })
        .collect();
    context! {
        report => Value::from_serialize(report),
        chart_svgs => chart_svgs,
        sparklines => sparklines,
        ..extra
    }
}

/// The HTML part of a report's email: tables and the shared stylesheet; charts by
/// `cid:chart-NAME`.
pub fn email_body(report: &Report, live: &str, snapshot: &str) -> Result<String> {
    #[derive(Serialize)]
    struct Group<'a> {
        title: &'a str,
        tiles: &'a [crate::report::Tile],
    }
    let mut groups = vec![Group {
        title: "Headline KPIs",
        tiles: &report.primary,
    }];
    groups.extend(report.sections.iter().map(|s| Group {
        title: &s.title,
        tiles: &s.tiles,
    }));
    render(
        "email.html",
        context! {
            report => Value::from_serialize(report),
            groups => Value::from_serialize(&groups),
            live => live,
            snapshot => snapshot,
            chart_width => charts::WIDTH,
            chart_height => charts::HEIGHT,
        },
    )
}

/// `/`: every dashboard with links to its recent weeks (newest first).
pub fn index_page(dashboards: &[(&Dashboard, Vec<String>)]) -> Result<String> {
    let rows: Vec<Value> = dashboards
        .iter()
        .map(|(d, weeks)| {
            context! {
                name => d.name, title => d.title, description => d.description,
                audience => d.audience, weeks => weeks,
            }
        })
        .collect();
    render(
        "index.html",
        context! { title => "Weekly reports", dashboards => rows },
    )
}

/// `/definitions`: every metric, one row each.
pub fn catalog_page(registry: &Registry) -> Result<String> {
    let metrics: Vec<Value> = registry
        .metrics
        .values()
        .map(|m| {
            context! {
                name => m.name, label => m.label, description => m.description,
                kind => kind_name(&m.kind), sources => m.sources, tier => m.tier.name(),
                owner => m.owner, hash => m.hash,
            }
        })
        .collect();
    render(
        "catalog.html",
        context! { title => "Metric catalog", version => registry.version, metrics => metrics },
    )
}

/// What a definition page shows besides the metric itself.
pub struct DefinitionExtras<'a> {
    /// Defining file, relative to the project.
    pub file: &'a str,
    /// The SQL that runs.
    pub sql: &'a str,
    /// Versions first served, oldest first.
    pub history: &'a [HistoryEntry],
}

/// `/definitions/{name}`: one metric's definition, SQL, users and history.
pub fn definition_page(
    registry: &Registry,
    metric: &Metric,
    extras: DefinitionExtras<'_>,
) -> Result<String> {
    let parts: Vec<Value> = metrics::parts(metric)
        .iter()
        .map(|part| {
            let sources = registry
                .metrics
                .get(part)
                .map(|m| m.sources.join(" + "))
                .unwrap_or_default();
            context! { name => part, sources => sources }
        })
        .collect();
    let dashboards: Vec<Value> = registry
        .dashboards
        .values()
        .filter(|d| d.primary.contains(&metric.name) || d.supporting.contains(&metric.name))
        .map(|d| context! { title => d.title, name => d.name })
        .collect();
    let targets: Vec<Value> = metric
        .targets
        .iter()
        .map(|(week, value)| context! { week => week, value => value })
        .collect();
    let history: Vec<Value> = extras
        .history
        .iter()
        .rev()
        .map(|v| {
            context! {
                hash => v.hash, current => v.hash == metric.hash,
                first_seen => v.first_seen.to_rfc3339(), commit => v.commit,
            }
        })
        .collect();
    render(
        "definition.html",
        context! {
            title => metric.label,
            m => context! {
                name => metric.name, label => metric.label, description => metric.description,
                sources => metric.sources, unit => metric.unit.name(), currency => metric.currency,
                good => metric.good.name(), tier => metric.tier.name(), owner => metric.owner,
                dimensions => metric.dimensions, hash => metric.hash,
            },
            kind => kind_name(&metric.kind),
            parts => parts,
            targets => targets,
            dashboards => dashboards,
            file => extras.file,
            sql => extras.sql,
            history => history,
        },
    )
}

/// `/sends`: the send log, newest first.
pub fn sends_page(records: &[SendRecord]) -> Result<String> {
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            context! {
                updated => r.updated_at.to_rfc3339(), dashboard => r.dashboard, week => r.week,
                recipients => r.recipients, snapshot => r.snapshot, message_id => r.message_id,
                status => r.status, attempts => r.attempts, error => r.error,
            }
        })
        .collect();
    render("sends.html", context! { title => "Sends", records => rows })
}

fn kind_name(kind: &MetricKind) -> &'static str {
    match kind {
        MetricKind::Simple { .. } => "simple",
        MetricKind::Ratio { .. } => "ratio",
        MetricKind::Derived { .. } => "derived",
        MetricKind::Cumulative { .. } => "cumulative",
        MetricKind::Conversion { .. } => "conversion",
    }
}
