//! `GET /attribution`: every rule of the attribution view, a worked example computed live from
//! the reference edge cases, and the demo's attributed pipeline under every model side by side.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};

use super::error::ApiError;
use super::AppState;
use crate::attribution::{
    self, example, format_duration, markov, path, Conversion, Credit, Model, Settings, Touch,
};
use crate::error::Error;
use crate::metrics::{self, MetricService};
use minijinja::context;
use minijinja::value::Value;
use serde::Serialize;

use crate::defs::Unit;
use crate::render::html::{render, safe};
use crate::time::Grain;

/// What each model does, in one line each (the page's table).
const MODELS: [(&str, &str); 7] = [
    ("first_touch", "All credit to the first touch of the path."),
    ("last_touch", "All credit to the last touch of the path."),
    ("last_non_direct", "All credit to the last touch whose channel is not <code>direct</code>; to the last touch when every touch is direct."),
    ("linear", "<code>1/n</code> to each of the <code>n</code> touches."),
    ("position_based", "40 % to the first touch, 40 % to the last, 20 % split evenly over the touches between them. One touch gets 1; two touches get 1/2 each."),
    ("time_decay", "Weight <code>2^(-age/half_life)</code> per touch, where age is the exact duration from the touch to the conversion (continuous, not whole days or weeks), normalised to sum to 1."),
    ("markov", "Channel weights from first-order Markov removal effects (below), then each conversion's credit split over its touches in proportion to their channels' weights."),
];

/// One cell of the worked example: the fraction (full precision for `data-credit`, four
/// places shown) and the revenue credit.
#[derive(Serialize)]
struct CreditCell {
    credit: String,
    shown: String,
    money: Option<String>,
}

fn credit_cell(credit: Option<&Credit>, revenue: bool) -> Option<CreditCell> {
    let credit = credit?;
    Some(CreditCell {
        credit: format!("{:.10}", credit.credit),
        shown: format!("{:.4}", credit.credit),
        money: match (revenue, credit.revenue_cents) {
            (true, Some(cents)) => Some(metrics::format_value(
                Unit::Currency,
                Some(cents as f64 / 100.0),
            )),
            _ => None,
        },
    })
}

fn utc(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Why a touch of the converting entity is or is not in the conversion's window.
fn membership(touch: &Touch, conversion: &Conversion, lookback: Duration) -> &'static str {
    if touch.ts > conversion.ts {
        "after the conversion: out"
    } else if touch.ts < conversion.ts - lookback {
        "older than the lookback: out"
    } else {
        "in the window"
    }
}

/// One touch row of a worked-example conversion.
#[derive(Serialize)]
struct ExampleRow {
    touch: String,
    when: String,
    channel: String,
    window: &'static str,
    cells: Vec<Option<CreditCell>>,
}

/// One conversion of the worked example with its touches' credits under every model.
#[derive(Serialize)]
struct ExampleConversion {
    id: String,
    entity: String,
    kind: String,
    ts: String,
    revenue: String,
    rows: Vec<ExampleRow>,
    unattributed: Option<Vec<Option<CreditCell>>>,
}

/// The worked example: every conversion of the edge cases under every model.
#[derive(Serialize)]
struct WorkedExample {
    touches: usize,
    conversions: usize,
    half_life: String,
    weights: Vec<String>,
    models: Vec<&'static str>,
    items: Vec<ExampleConversion>,
}

fn worked_example(half_life: Duration) -> WorkedExample {
    let lookback = Duration::days(30);
    let touches = example::touches();
    let conversions = example::conversions();
    let models = Model::all(half_life);
    let credits: Vec<Vec<Credit>> = models
        .iter()
        .map(|model| attribution::attribute(&touches, &conversions, *model, lookback))
        .collect();
    let mut by_entity: BTreeMap<&str, (Vec<Touch>, Vec<Conversion>)> = BTreeMap::new();
    for touch in &touches {
        by_entity
            .entry(&touch.entity)
            .or_default()
            .0
            .push(touch.clone());
    }
    for conversion in &conversions {
        by_entity
            .entry(&conversion.entity)
            .or_default()
            .1
            .push(conversion.clone());
    }
    let paths = by_entity
        .values()
        .flat_map(|(t, c)| markov::entity_paths(t, c, lookback));
    let weights = markov::channel_weights(paths)
        .iter()
        .map(|(channel, weight)| format!("{channel} {weight:.4}"))
        .collect();
    let items = conversions
        .iter()
        .map(|conversion| example_conversion(conversion, &touches, &credits, lookback))
        .collect();
    WorkedExample {
        touches: touches.len(),
        conversions: conversions.len(),
        half_life: format_duration(half_life),
        weights,
        models: models.iter().map(|m| m.name()).collect(),
        items,
    }
}

/// One conversion's touches (in time order, repeats marked) with their credit under each model.
fn example_conversion(
    conversion: &Conversion,
    touches: &[Touch],
    credits: &[Vec<Credit>],
    lookback: Duration,
) -> ExampleConversion {
    let revenue = conversion.revenue_cents.is_some();
    let own: Vec<Touch> = touches
        .iter()
        .filter(|t| t.entity == conversion.entity)
        .cloned()
        .collect();
    let in_path: Vec<String> = path(&own, conversion, lookback)
        .iter()
        .map(|t| t.id.clone())
        .collect();
    let mut shown = BTreeSet::new();
    let mut ordered = own.clone();
    ordered.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
    let rows = ordered
        .iter()
        .map(|touch| {
            let duplicate = !shown.insert(touch.id.clone());
            let window = if duplicate {
                "same id landed again: counts once"
            } else {
                membership(touch, conversion, lookback)
            };
            let cells = credits
                .iter()
                .map(|model_credits| {
                    let credit = (!duplicate && in_path.contains(&touch.id))
                        .then(|| {
                            model_credits.iter().find(|c| {
                                c.conversion_id == conversion.id
                                    && c.touch_id.as_deref() == Some(&touch.id)
                            })
                        })
                        .flatten();
                    credit_cell(credit, revenue)
                })
                .collect();
            ExampleRow {
                touch: touch.id.clone(),
                when: utc(touch.ts),
                channel: touch.channel.clone(),
                window,
                cells,
            }
        })
        .collect();
    let unattributed = in_path.is_empty().then(|| {
        credits
            .iter()
            .map(|model_credits| {
                let credit = model_credits
                    .iter()
                    .find(|c| c.conversion_id == conversion.id && c.touch_id.is_none());
                credit_cell(credit, revenue)
            })
            .collect()
    });
    ExampleConversion {
        id: conversion.id.clone(),
        entity: conversion.entity.clone(),
        kind: conversion.kind.clone().unwrap_or_default(),
        ts: utc(conversion.ts),
        revenue: conversion
            .revenue_cents
            .map(|cents| metrics::format_value(Unit::Currency, Some(cents as f64 / 100.0)))
            .unwrap_or_else(|| "no revenue (count only)".into()),
        rows,
        unattributed,
    }
}

/// The query parameters of `/attribution`, read by the handler and listed in the document.
pub const PARAMS: [(&str, &str); 3] = [
    (
        "week",
        "the week of the model comparison, such as 2026-W44 (default: the last complete week)",
    ),
    (
        "lookback",
        "lookback of the comparison, such as 30d (default: kpi.toml)",
    ),
    (
        "metric",
        "an attributed metric with a channel dimension (default: attributed_pipeline)",
    ),
];

/// Query parameters of the page.
#[derive(Default)]
struct Params {
    week: Option<String>,
    lookback: Option<String>,
    metric: Option<String>,
}

/// `GET /attribution[?week=2026-W44&lookback=30d&metric=attributed_pipeline]`.
pub async fn get_attribution(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut params = Params::default();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.to_string();
        match key.as_ref() {
            "week" => params.week = Some(value),
            "lookback" => params.lookback = Some(value),
            "metric" => params.metric = Some(value),
            other => {
                return Err(Error::input(
                    "bad_parameter",
                    format!(
                        "unknown parameter `{other}`; use {}",
                        PARAMS.map(|(name, _)| name).join(", ")
                    ),
                )
                .into())
            }
        }
    }
    let config = &state.config.attribution;
    let default = config.default;
    let half_life = config.half_life;
    let base = config
        .settings(None, params.lookback.as_deref())
        .map_err(|message| Error::input("bad_attribution", message))?;

    let demo = comparison(&state, &params, base).await?;
    let models: Vec<Value> = MODELS
        .iter()
        .map(|(name, text)| context! { name => name, text => safe((*text).to_string()) })
        .collect();
    let html = render(
        "attribution.html",
        context! {
            title => "Attribution",
            default_model => default.model.name(),
            default_label => default.label(),
            touches => config.touches,
            conversions => config.conversions,
            half_life => format_duration(config.half_life),
            models => models,
            example => Value::from_serialize(worked_example(half_life)),
            unattributed_label => attribution::UNATTRIBUTED,
            demo => Value::from_serialize(&demo),
        },
    )?;
    Ok(Html(html).into_response())
}

/// One cell of the side-by-side table.
#[derive(Serialize)]
struct ModelCell {
    model: String,
    value: Option<f64>,
}

/// One channel (or the total) of the side-by-side table.
#[derive(Serialize)]
struct ModelRow {
    channel: String,
    cells: Vec<ModelCell>,
}

/// One attributed metric by channel under every model, or why there is none to show.
#[derive(Serialize, Default)]
struct Comparison {
    /// `no_metric`, `no_rows`, or empty for a table.
    message: &'static str,
    name: String,
    metric_label: String,
    unit: &'static str,
    label: String,
    previous: String,
    start: String,
    end: String,
    zone: String,
    lookback: String,
    models: Vec<String>,
    rows: Vec<ModelRow>,
    total: Option<ModelRow>,
}

/// The side-by-side numbers of one attributed metric by channel under every model.
async fn comparison(
    state: &AppState,
    params: &Params,
    base: Settings,
) -> Result<Comparison, Error> {
    let registry = state.read_definitions().registry;
    let attributed: Vec<&String> = registry
        .metrics
        .values()
        .filter(|m| {
            metrics::reads_attribution(&registry, m) && m.dimensions.iter().any(|d| d == "channel")
        })
        .map(|m| &m.name)
        .collect();
    let chosen = match &params.metric {
        Some(name) if attributed.contains(&name) => name.clone(),
        Some(name) => {
            return Err(Error::input(
                "not_attributed",
                format!("`{name}` is not an attributed metric with a channel dimension"),
            ))
        }
        None => match attributed
            .iter()
            .find(|n| n.as_str() == "attributed_pipeline")
            .or(attributed.first())
        {
            Some(name) => (*name).clone(),
            None => {
                return Ok(Comparison {
                    message: "no_metric",
                    ..Comparison::default()
                })
            }
        },
    };
    let metric = registry
        .metrics
        .get(&chosen)
        .ok_or_else(|| Error::internal("attributed metric vanished"))?;
    let calendar = state.config.calendar();
    let week = match &params.week {
        Some(label) => calendar
            .parse_as(label, Grain::Week, false)
            .map_err(|message| Error::input("bad_period", message))?,
        None => calendar.previous(calendar.period_of_instant(Utc::now(), Grain::Week)),
    };
    let service = MetricService::new(&registry, &state.engine, calendar);
    let context = state.report_context(&registry);
    let turn = state.gate.admit("the attribution comparison").await?;
    let comparison = context
        .model_comparison(&service, &chosen, week, base)
        .await?;
    drop(turn);
    let row = |channel: &str, values: &[Option<f64>]| ModelRow {
        channel: channel.to_string(),
        cells: comparison
            .models
            .iter()
            .zip(values)
            .map(|(model, value)| ModelCell {
                model: model.clone(),
                value: *value,
            })
            .collect(),
    };
    let rows = comparison
        .rows
        .iter()
        .map(|(channel, values)| {
            let zeroed: Vec<Option<f64>> = values.iter().map(|v| Some(v.unwrap_or(0.0))).collect();
            row(channel, &zeroed)
        })
        .collect::<Vec<_>>();
    Ok(Comparison {
        message: if rows.is_empty() { "no_rows" } else { "" },
        name: chosen.clone(),
        metric_label: metric.label.clone(),
        unit: metric.unit.name(),
        label: calendar.label(week),
        previous: calendar.label(calendar.previous(week)),
        start: week.start.to_string(),
        end: week.last_day().to_string(),
        zone: state.config.time_zone.to_string(),
        lookback: format_duration(base.lookback),
        models: comparison.models.clone(),
        total: Some(row("(all)", &comparison.totals)),
        rows,
    })
}
