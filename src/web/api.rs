//! JSON API handlers: the metric catalog, metric series and the OpenAPI document.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::encoded::Encoded;
use super::error::ApiError;
use super::AppState;
use crate::cache::{Cache, Flights};
use crate::defs::Registry;
use crate::error::Error;
use crate::metrics::{self, MetricService, SeriesRequest};
use crate::time::{Calendar, Grain, Period};

/// `GET /api/v1/metrics`: every metric with its definition.
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let registry = state.read_definitions().registry;
    let list: Vec<serde_json::Value> = registry
        .metrics
        .values()
        .map(|metric| catalog_entry(&registry, metric))
        .collect();
    Json(serde_json::json!({ "definitions_version": registry.version, "metrics": list }))
        .into_response()
}

/// One metric as the catalog shows it.
pub fn catalog_entry(
    registry: &crate::defs::Registry,
    metric: &crate::defs::Metric,
) -> serde_json::Value {
    let dashboards: Vec<&String> = registry
        .dashboards
        .values()
        .filter(|d| d.primary.contains(&metric.name) || d.supporting.contains(&metric.name))
        .map(|d| &d.name)
        .collect();
    serde_json::json!({
        "name": metric.name, "label": metric.label, "description": metric.description,
        "sources": metric.sources, "owner": metric.owner, "tier": metric.tier, "unit": metric.unit,
        "currency": metric.currency, "good": metric.good, "definition": metric.kind,
        "dimensions": metric.dimensions, "targets": metric.targets, "definition_hash": metric.hash,
        "parts": metrics::parts(metric), "sql": metrics::describe_sql(registry, metric),
        "dashboards": dashboards, "file": format!("{}:{}", metric.path.display(), metric.line),
    })
}

/// Metric API answers kept as bytes, by everything an answer depends on: the definitions
/// version, the metric, the query as asked and the periods it resolved to, the format, and
/// every table's data version. A landing or an edit makes new keys; old ones age out.
pub struct Answers {
    kept: Cache<String, Arc<Encoded>>,
    flights: Flights<String, Arc<Encoded>>,
}

impl Answers {
    /// Answers kept within `max_bytes`, at most 512 of them; an answer weighs its bytes and half
    /// again for the compressed forms made later.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            kept: Cache::weighed(512, max_bytes, |answer| answer.size() * 3 / 2),
            flights: Flights::default(),
        }
    }

    /// Bytes the kept answers weigh.
    pub fn bytes(&self) -> usize {
        self.kept.bytes()
    }
}

/// `GET /api/v1/metrics/{name}?from=&to=&grain=&by=&filter=&compare=&model=&lookback=`.
///
/// Answered from [`Answers`] when the same query was answered for the same data and
/// definitions; else computed once (from the rollup store) however many ask at the same time.
pub async fn get_metric_series(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = SeriesParams::parse(query.as_deref().unwrap_or_default())?;
    let calendar = state.config.calendar();
    let (from, to) = params.range(&calendar)?;
    // Every parameter is checked here: a bad query is a 400 at once, never a kept answer or a
    // turn in the queue.
    let compare = metrics::parse_comparisons(&params.compare.join(","))?;
    let request = SeriesRequest {
        metric: name,
        from,
        to,
        by: params.by,
        filters: metrics::parse_filters(&params.filter)?,
        compare: compare.clone(),
        attribution: metrics::attribution_choice(
            &state.config.attribution,
            params.model.as_deref(),
            params.lookback.as_deref(),
        )?,
    };
    let registry = state.read_definitions().registry;
    let wants_csv = params.format.as_deref() == Some("csv")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"));
    let key = {
        let mut hasher = Sha256::new();
        for part in [
            registry.version.as_str(),
            &request.metric,
            query.as_deref().unwrap_or_default(),
            &format!("{from:?}|{to:?}|{wants_csv}"),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for (table, version) in state.engine.data_versions().await {
            hasher.update(table.as_bytes());
            hasher.update(version.as_bytes());
        }
        crate::digest::short_hex(&hasher.finalize(), 16)
    };
    if let Some(answer) = state.answers.kept.get(&key) {
        return Ok(answer.respond(&headers, None));
    }
    let answer = state
        .answers
        .flights
        .run(key.clone(), || async {
            let _turn = state.gate.admit("this series").await?;
            let answer = Arc::new(answer(&state, &registry, &request, &compare, wants_csv).await?);
            state.answers.kept.insert(key.clone(), Arc::clone(&answer));
            Ok::<_, ApiError>(answer)
        })
        .await?;
    Ok(answer.respond(&headers, None))
}

/// Computes a series and renders it as JSON (with the definition changes in its range) or CSV.
async fn answer(
    state: &AppState,
    registry: &Registry,
    request: &SeriesRequest,
    compare: &[metrics::Comparison],
    csv: bool,
) -> Result<Encoded, ApiError> {
    let calendar = state.config.calendar();
    let series = MetricService::new(registry, &state.engine, calendar)
        .series(request)
        .await?;
    if csv {
        return Ok(Encoded::new(
            "text/csv; charset=utf-8",
            metrics::to_csv(&series, compare),
        ));
    }
    let (range_start, _) = calendar.instants(request.from);
    let (_, range_end) = calendar.instants(request.to);
    let changes = definition_changes(state, registry, &series.metric, range_start, range_end);
    let mut body = serde_json::to_value(&series).map_err(|e| Error::internal(e.to_string()))?;
    body["definition_changes"] = serde_json::Value::Array(changes);
    let bytes = serde_json::to_vec(&body).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Encoded::new("application/json", bytes))
}

/// The definition versions (of the metric or a part) first served inside the range, other
/// than the first version ever recorded: values on either side were computed differently.
fn definition_changes(
    state: &AppState,
    registry: &Registry,
    metric: &str,
    range_start: chrono::DateTime<Utc>,
    range_end: chrono::DateTime<Utc>,
) -> Vec<serde_json::Value> {
    let mut names = vec![metric.to_string()];
    names.extend(
        registry
            .metrics
            .get(metric)
            .map(metrics::parts)
            .unwrap_or_default(),
    );
    let history = match state.history.lock() {
        Ok(history) => history,
        Err(poisoned) => poisoned.into_inner(),
    };
    names
        .iter()
        .flat_map(|name| history.for_metric(name).into_iter().skip(1))
        .filter(|version| version.first_seen >= range_start && version.first_seen < range_end)
        .map(|version| {
            serde_json::json!({"metric": version.metric, "hash": version.hash,
            "first_seen": version.first_seen, "commit": version.commit})
        })
        .collect()
}

#[derive(Default)]
struct SeriesParams {
    from: Option<String>,
    to: Option<String>,
    grain: Option<String>,
    by: Vec<String>,
    filter: Vec<String>,
    compare: Vec<String>,
    format: Option<String>,
    model: Option<String>,
    lookback: Option<String>,
}

impl SeriesParams {
    /// Reads the query string; an unknown parameter is an error that lists the known ones.
    fn parse(query: &str) -> Result<Self, Error> {
        let mut params = Self::default();
        let list = |value: &str| -> Vec<String> {
            value
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let value = value.to_string();
            match key.as_ref() {
                "from" => params.from = Some(value),
                "to" => params.to = Some(value),
                "grain" => params.grain = Some(value),
                "by" => params.by.extend(list(&value)),
                "filter" => params.filter.extend(list(&value)),
                "compare" => params.compare.push(value),
                "format" => params.format = Some(value),
                "model" => params.model = Some(value),
                "lookback" => params.lookback = Some(value),
                other => {
                    return Err(Error::input(
                        "bad_parameter",
                        format!(
                            "unknown parameter `{other}`; use {}",
                            SERIES_PARAMS.map(|(name, _)| name).join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(params)
    }

    /// The periods asked for; without a range, the 13 periods up to the last complete one.
    fn range(&self, calendar: &Calendar) -> Result<(Period, Period), Error> {
        let grain: Grain = match &self.grain {
            Some(text) => text
                .parse()
                .map_err(|message: String| Error::input("bad_grain", message))?,
            None => Grain::Week,
        };
        let current = calendar.period_of_instant(Utc::now(), grain);
        let last_complete = calendar.previous(current);
        let to = self
            .to
            .clone()
            .unwrap_or_else(|| calendar.label(last_complete));
        let from = self.from.clone().unwrap_or_else(|| {
            let mut first = calendar.parse_as(&to, grain, true).unwrap_or(last_complete);
            for _ in 0..12 {
                first = calendar.previous(first);
            }
            calendar.label(first)
        });
        metrics::parse_range(calendar, &from, &to, grain)
    }
}

/// `GET /api/openapi.json`: generated from the route table the server is built from.
pub async fn get_openapi() -> Response {
    let routes: Vec<_> = super::routes::table()
        .into_iter()
        .map(|(route, _)| route)
        .collect();
    Json(super::routes::document(&routes)).into_response()
}

/// The query parameters of `GET /api/v1/metrics/{name}`: the parser reads these and no other,
/// and the document lists them.
pub const SERIES_PARAMS: [(&str, &str); 9] = [
    ("from", "first period: 2026-W40, 2026-11-16, 2026-11 or 2026-Q4 (default: 12 periods before `to`)"),
    ("to", "last period, included (default: the last complete period)"),
    ("grain", "day, week (default), month or quarter"),
    ("by", "dimensions to slice by, comma-separated"),
    ("filter", "DIMENSION=VALUE, repeatable or comma-separated"),
    ("compare", "previous, year_ago, trailing_4, comma-separated"),
    ("format", "csv for CSV (or send Accept: text/csv)"),
    ("model", "attribution model of an attributed metric: first_touch, last_touch, last_non_direct, linear, position_based, time_decay, markov (default: kpi.toml)"),
    ("lookback", "attribution lookback of an attributed metric, such as 30d (default: kpi.toml)"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_reads_exactly_the_documented_series_parameters() {
        for (key, _) in SERIES_PARAMS {
            assert!(
                SeriesParams::parse(&format!("{key}=x")).is_ok(),
                "`{key}` is not parsed"
            );
        }
        assert!(SeriesParams::parse("nope=1").is_err());
    }
}
