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
use crate::render::html::escape;
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

fn fraction_cell(credit: Option<&Credit>, revenue: bool) -> String {
    match credit {
        None => "<td class=\"muted\">—</td>".to_string(),
        Some(credit) => {
            let money = match (revenue, credit.revenue_cents) {
                (true, Some(cents)) => format!(
                    "<br><span class=\"muted\">{}</span>",
                    metrics::format_value(crate::defs::Unit::Currency, Some(cents as f64 / 100.0))
                ),
                _ => String::new(),
            };
            format!(
                "<td data-credit=\"{:.10}\">{:.4}{money}</td>",
                credit.credit, credit.credit
            )
        }
    }
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

/// The worked example: every conversion of the edge cases under every model.
fn worked_example(half_life: Duration) -> String {
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
    let weights = markov::channel_weights(paths);
    let weights_text: Vec<String> = weights
        .iter()
        .map(|(channel, weight)| format!("{} {:.4}", escape(channel), weight))
        .collect();

    let mut out = String::new();
    out.push_str(&format!(
        "<p>The reference edge cases of the test suite ({} touch rows, {} conversions), credited now by \
the same code that computes the reports, with a 30-day lookback and a {} half-life. Each cell is the \
fraction of the conversion and, below it, the revenue credit. Markov channel weights from these paths: {}.</p>",
        touches.len(),
        conversions.len(),
        format_duration(half_life),
        weights_text.join(", ")
    ));
    let header: String = models
        .iter()
        .map(|m| format!("<th>{}</th>", m.name()))
        .collect();
    for conversion in &conversions {
        let revenue = conversion
            .revenue_cents
            .map(|cents| {
                metrics::format_value(crate::defs::Unit::Currency, Some(cents as f64 / 100.0))
            })
            .unwrap_or_else(|| "no revenue (count only)".into());
        out.push_str(&format!(
            "<h3 id=\"example-{id}\">{id}: {entity} converts ({kind}) at {ts}, {revenue}</h3>",
            id = escape(&conversion.id),
            entity = escape(&conversion.entity),
            kind = escape(conversion.kind.as_deref().unwrap_or("")),
            ts = utc(conversion.ts),
        ));
        out.push_str(&format!(
            "<table class=\"example\"><thead><tr><th>Touch</th><th>When</th><th>Channel</th><th>Window</th>{header}</tr></thead><tbody>"
        ));
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
        for touch in &ordered {
            let duplicate = !shown.insert(touch.id.clone());
            let window = if duplicate {
                "same id landed again: counts once"
            } else {
                membership(touch, conversion, lookback)
            };
            let cells: String = credits
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
                    fraction_cell(credit, conversion.revenue_cents.is_some())
                })
                .collect();
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>{cells}</tr>",
                escape(&touch.id),
                utc(touch.ts),
                escape(&touch.channel),
                window
            ));
        }
        if in_path.is_empty() {
            let cells: String = credits
                .iter()
                .map(|model_credits| {
                    let credit = model_credits
                        .iter()
                        .find(|c| c.conversion_id == conversion.id && c.touch_id.is_none());
                    fraction_cell(credit, conversion.revenue_cents.is_some())
                })
                .collect();
            out.push_str(&format!(
                "<tr><td colspan=\"4\">{} (no touch in the window)</td>{cells}</tr>",
                attribution::UNATTRIBUTED
            ));
        }
        out.push_str("</tbody></table>");
    }
    out
}

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
                    format!("unknown parameter `{other}`; use week, lookback, metric"),
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
    let models: String = MODELS
        .iter()
        .map(|(name, text)| {
            format!("<tr><th id=\"model-{name}\"><code>{name}</code></th><td>{text}</td></tr>")
        })
        .collect();
    let body = format!(
        "<h1>Attribution</h1>\
<p>How kpi credits conversions to the marketing touches before them. Attributed numbers are ordinary \
metrics that read the table <code>reporting.attribution</code>; every attributed answer names the model \
and lookback that produced it, and any model can be asked for (<code>model=</code>, <code>lookback=</code> \
on the metric API, <code>--model</code>/<code>--lookback</code> on <code>kpi metric</code>, \
<code>attribution('markov', '60d')</code> in SQL).</p>\
<dl><dt>Project default</dt><dd data-default-model=\"{model}\">{label} (<code>kpi.toml</code> <code>[attribution]</code>)</dd>\
<dt>Touches</dt><dd><code>{touches}</code>: <code>touch_id, entity_id, touched_at, channel, campaign</code></dd>\
<dt>Conversions</dt><dd><code>{conversions}</code>: <code>conversion_id, entity_id, converted_at, conversion_type, revenue</code></dd>\
<dt>Time-decay half-life</dt><dd>{half_life}</dd></dl>\
<h2 id=\"rules\">Rules</h2>\
<h3 id=\"window\">Lookback window</h3><p>A touch counts for a conversion of the same entity when \
<code>conversion_ts − lookback ≤ touch_ts ≤ conversion_ts</code>: exact durations between instants \
(30 days is 720 hours, whatever the time zones or daylight-saving changes), both ends included. A touch \
one second older than the lookback, or one second after the conversion, is out. Timestamps with an \
offset are compared as instants.</p>\
<h3 id=\"order\">Order and ties</h3><p>A conversion's path is its window's touches ordered by \
<code>(touch_ts, touch_id)</code>: two touches at the same instant are ordered by their ids, so the \
first and last touch are always well defined and the same run gives the same answer.</p>\
<h3 id=\"duplicates\">Duplicate touches</h3><p>A touch id that appears more than once (a re-landed file) \
counts once.</p>\
<h3 id=\"repeated\">Repeated conversions</h3><p>Each conversion has its own window. An earlier conversion \
does not reset the path of a later one: a touch inside both windows is credited in both.</p>\
<h3 id=\"unattributed\">Conversions with no touch</h3><p>A conversion with no touch in its window gives \
all its credit to <code>(unattributed)</code>, so credits always add up to exactly 1 per conversion and \
attributed totals reconcile with the conversion counts and revenue of the CRM.</p>\
<h3 id=\"money\">Revenue to the cent</h3><p>A conversion's revenue is split by its fractions in whole \
cents: every part is rounded down, then the cents left over go one by one to the largest remainders; \
a tie goes to the later touch in path order (9.99 in halves is 4.99, then 5.00). The parts add up to \
the revenue exactly.</p>\
<h3 id=\"conversion-types\">Conversion types</h3><p>Conversions carry a type (in the demo: \
<code>mql</code>, <code>opportunity_created</code>, <code>closed_won</code>). The heuristic models \
credit each conversion on its own; the Markov chain is built per type.</p>\
<h2 id=\"models\">Models</h2><table><tbody>{models}</tbody></table>\
<h3 id=\"markov\">The Markov model, and what it is not</h3><p>Every entity's paths become a chain \
<code>start → channel → … → conversion</code> or <code>… → null</code>: one converting path per \
conversion (its window's channels) and one non-converting path (the touches after the entity's last \
conversion of that type, within one lookback of the last of them; all of them if it never converted). \
Consecutive repeats of a channel are collapsed. The probability of reaching <em>conversion</em> from \
<em>start</em> is computed exactly, by solving the absorbing chain's linear equations (no simulation, \
no sampling). A channel's removal effect is <code>1 − P(conversion without it) / P(conversion)</code>, \
removing it sending every transition into it to <em>null</em>; the effects, normalised to sum to 1, are \
the channel weights. The model is first-order and channel-level: it does not see campaigns, time \
between touches or position, its weights depend on every path in the data (so one week's numbers can \
move when other weeks' data lands), and it is <strong>not</strong> Google's proprietary data-driven \
attribution or any vendor's model.</p>\
<h2 id=\"example\">Worked example</h2>{example}\
<h2 id=\"demo\">This project's numbers under every model</h2>{demo}",
        model = default.model.name(),
        label = escape(&default.label()),
        touches = escape(&config.touches),
        conversions = escape(&config.conversions),
        half_life = escape(&format_duration(config.half_life)),
        example = worked_example(half_life),
    );
    Ok(Html(crate::render::pages::attribution_page(body)?).into_response())
}

/// The side-by-side table of one attributed metric by channel under every model.
async fn comparison(state: &AppState, params: &Params, base: Settings) -> Result<String, Error> {
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
                return Ok("<p>No metric reads <code>reporting.attribution</code> with a <code>channel</code> dimension yet; \
define one as in README \"Attribution\".</p>".into())
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
    let label = calendar.label(week);
    let service = MetricService::new(&registry, &state.engine, calendar);
    let context = state.report_context(&registry);
    let comparison = context
        .model_comparison(&service, &chosen, week, base)
        .await?;
    let previous = calendar.label(calendar.previous(week));
    let lookback = format_duration(base.lookback);
    let header: String = comparison
        .models
        .iter()
        .map(|m| format!("<th><a href=\"#model-{0}\">{0}</a></th>", m))
        .collect();
    let cell = |model: &str, channel: &str, value: Option<f64>| {
        format!(
            "<td class=\"num\" data-metric=\"{metric}\" data-period=\"{label}\" data-model=\"{model}\" data-lookback=\"{lookback}\" data-channel=\"{channel}\" data-value=\"{raw}\">{shown}</td>",
            metric = escape(&chosen),
            channel = escape(channel),
            raw = value.map(|v| v.to_string()).unwrap_or_default(),
            shown = metrics::format_value(metric.unit, value),
        )
    };
    let mut rows = String::new();
    for (channel, values) in &comparison.rows {
        let cells: String = comparison
            .models
            .iter()
            .zip(values)
            .map(|(m, v)| cell(m, channel, Some(v.unwrap_or(0.0))))
            .collect();
        rows.push_str(&format!("<tr><th>{}</th>{cells}</tr>", escape(channel)));
    }
    let total_cells: String = comparison
        .models
        .iter()
        .zip(&comparison.totals)
        .map(|(m, v)| cell(m, "(all)", *v))
        .collect();
    if comparison.rows.is_empty() {
        return Ok(format!(
            "<p>No {} in {label}. Pick another week: <a href=\"/attribution?week={previous}#demo\">{previous}</a>.</p>",
            escape(&metric.label)
        ));
    }
    let (start, end) = (week.start, week.last_day());
    Ok(format!(
        "<p><a href=\"/definitions/{name}\">{metric_label}</a> by channel in {label} ({start} – {end}, \
{zone}), {lookback} lookback, one column per model. Every column adds up to the same total: models move \
credit between channels, never create or lose it. <a href=\"/attribution?week={previous}&amp;lookback={lookback}#demo\">Previous week</a> · \
lookback <a href=\"/attribution?week={label}&amp;lookback=7d#demo\">7d</a> \
<a href=\"/attribution?week={label}&amp;lookback=30d#demo\">30d</a> \
<a href=\"/attribution?week={label}&amp;lookback=90d#demo\">90d</a></p>\
<table class=\"models\"><thead><tr><th>Channel</th>{header}</tr></thead><tbody>{rows}</tbody>\
<tfoot><tr><th>Total</th>{total_cells}</tr></tfoot></table>",
        name = escape(&chosen),
        metric_label = escape(&metric.label),
        zone = escape(&state.config.time_zone.to_string()),
    ))
}
