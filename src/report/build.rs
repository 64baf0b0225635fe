//! Assembling one [`Report`]: asks the metric layer for every series the dashboard shows and
//! hands the numbers to the pure parts (tiles, chart data, narrative). Owns the order of the
//! work and nothing else: no formatting, no HTML, no SQL of its own.

use std::collections::BTreeMap;

use futures::{FutureExt, StreamExt};

use super::chart_data;
use super::model::{
    BreakdownTable, ChartData, Column, Footnote, FunnelStep, ModelComparison, Report, Tile,
    TileSection,
};
use super::narrative::summarise;
use super::tiles::{tile_from, unavailable_tile};
use super::Context;
use crate::attribution::{Model, Settings};
use crate::defs::{Breakdown, ChartKind, Dashboard, Metric, MetricKind};
use crate::error::{Error, Result};
use crate::metrics::{self, AttributionUsed, MetricService, SeriesRequest};
use crate::time::Period;

/// Tiles whose series are computed side by side when the rollup store answers them.
const TILES_AT_ONCE: usize = 16;

impl Context<'_> {
    /// Computes the report of `dashboard` for `week`.
    pub async fn build(&self, dashboard: &Dashboard, week: Period) -> Result<Report> {
        // One listing for the whole report: every number is computed from the same files.
        self.engine.refresh().await?;
        self.build_as_listed(dashboard, week).await
    }

    /// [`Context::build`] over the files as last listed (a command that has just listed them).
    pub async fn build_as_listed(&self, dashboard: &Dashboard, week: Period) -> Result<Report> {
        let settings = dashboard.attribution;
        let service = MetricService::new(self.registry, self.engine, self.calendar).as_listed();
        let mut first = week;
        for _ in 1..dashboard.trend_weeks {
            first = self.calendar.previous(first);
        }
        // Three independent parts computed at once (their queries run on the query runtime's
        // threads side by side): the tiles and the charts drawn from them, the breakdown and
        // model comparison, and freshness and data health.
        let complete = self.complete(dashboard, week);
        let tiles_and_charts = async {
            let mut tiles = self.tiles(&service, dashboard, first, week).await;
            // Both read the finished tiles; their queries run side by side.
            let (drivers, charts) = tokio::join!(
                self.drivers(&service, dashboard, &tiles, week),
                self.charts(&service, dashboard, &tiles, week)
            );
            for (name, drivers) in drivers {
                if let Some(tile) = tiles.get_mut(&name) {
                    tile.drivers = drivers;
                }
            }
            (tiles, charts)
        };
        // The breakdown and the model comparison side by side: the comparison starts
        // attribution's read of its inputs while the breakdown's other columns run.
        let tables = async {
            let breakdown = async {
                match &dashboard.breakdown {
                    Some(b) => Some(self.breakdown(&service, b, week, settings).await),
                    None => None,
                }
            };
            let attribution_comparison = async {
                match &dashboard.attribution_comparison {
                    Some(metric) => self
                        .model_comparison(&service, metric, week, settings)
                        .await
                        .ok(),
                    None => None,
                }
            };
            tokio::join!(breakdown, attribution_comparison)
        };
        let checks = async {
            let freshness = self.freshness(dashboard, week, complete).await;
            let health = self.health(&service, dashboard, week, settings).await;
            (freshness, health)
        };
        let ((tiles, (charts, funnel)), (breakdown, attribution_comparison), checks) =
            tokio::join!(tiles_and_charts, tables, checks);
        let ((freshness, banners), health) = checks;
        let tile = |name: &String| tiles.get(name).cloned();
        let primary: Vec<Tile> = dashboard.primary.iter().filter_map(tile).collect();
        let sections: Vec<TileSection> = dashboard
            .sections
            .iter()
            .map(|s| TileSection {
                title: s.title.clone(),
                tiles: s.metrics.iter().filter_map(tile).collect(),
            })
            .collect();
        let mut report = Report {
            dashboard: dashboard.name.clone(),
            title: dashboard.title.clone(),
            description: dashboard.description.clone(),
            audience: dashboard.audience.clone(),
            week: self.calendar.label(week),
            previous_week: Some(self.calendar.label(self.calendar.previous(week))),
            next_week: {
                let next = self.calendar.next(week);
                (self
                    .calendar
                    .period_of_instant(self.now, next.grain())
                    .start
                    >= next.start)
                    .then(|| self.calendar.label(next))
            },
            start: week.start,
            end: week.last_day(),
            time_zone: self.config.time_zone.to_string(),
            attribution: AttributionUsed::from(settings),
            definitions_version: self.registry.version.clone(),
            complete,
            banners,
            freshness,
            summary: Vec::new(),
            primary,
            sections,
            charts,
            funnel,
            breakdown,
            attribution_comparison,
            health,
            footnotes: self.footnotes(dashboard),
        };
        report.summary = summarise(&report, &dashboard.thresholds);
        Ok(report)
    }

    /// Every tile's series: the trend weeks up to the report week, with the dashboard's
    /// comparisons, marked where a definition changed inside those weeks.
    async fn tiles(
        &self,
        service: &MetricService<'_>,
        dashboard: &Dashboard,
        first: Period,
        week: Period,
    ) -> BTreeMap<String, Tile> {
        // With the rollup store, a tile's series is mostly stored partitions and a few narrow
        // misses: a few tiles at a time overlap one's lookups with another's queries. Without
        // it (the reference path), each series reads whole views, so one at a time.
        let at_once = if self.engine.rollups().is_some() {
            TILES_AT_ONCE
        } else {
            1
        };
        let mut pending = Vec::new();
        for name in self.metrics_of(dashboard) {
            // Boxed and gathered first: a stream mapping names to these futures is a type the
            // compiler cannot prove `Send` for the server's background build.
            pending.push(self.tile(service, dashboard, name, first, week).boxed());
        }
        let mut tiles: BTreeMap<String, Tile> = futures::stream::iter(pending)
            .buffered(at_once)
            .filter_map(std::future::ready)
            .collect()
            .await;
        self.mark_definition_changes(&mut tiles, first, week);
        tiles
    }

    /// One tile's series (`None` for a name that is not a metric).
    async fn tile(
        &self,
        service: &MetricService<'_>,
        dashboard: &Dashboard,
        name: &str,
        first: Period,
        week: Period,
    ) -> Option<(String, Tile)> {
        let metric = self.registry.metrics.get(name)?;
        let attributed = metrics::reads_attribution(self.registry, metric);
        let request = SeriesRequest {
            metric: name.to_string(),
            from: first,
            to: week,
            by: Vec::new(),
            filters: Vec::new(),
            compare: dashboard.compare.clone(),
            attribution: attributed.then_some(dashboard.attribution),
        };
        let tile = match service.series(&request).await {
            Ok(series) => tile_from(metric, &series, &dashboard.thresholds),
            Err(error) => unavailable_tile(metric, error.message),
        };
        Some((name.to_string(), tile))
    }

    /// The drivers of the KPIs "What changed" tells about: each dimension value's part in the
    /// change against the week before, by the dashboard's breakdown dimension, for KPIs that
    /// add up across its values (a SUM or COUNT of one table); largest first, only values that
    /// moved with the total. A query that fails leaves the KPI without drivers. The KPIs'
    /// queries run side by side.
    async fn drivers(
        &self,
        service: &MetricService<'_>,
        dashboard: &Dashboard,
        tiles: &BTreeMap<String, Tile>,
        week: Period,
    ) -> Vec<(String, Vec<super::model::Driver>)> {
        let Some(by) = dashboard.breakdown.as_ref().map(|b| b.by.clone()) else {
            return Vec::new();
        };
        // The tiles the page shows, as the narrative ranks them.
        let shown = dashboard
            .primary
            .iter()
            .chain(dashboard.sections.iter().flat_map(|s| &s.metrics));
        let mut seen = std::collections::BTreeSet::new();
        let ranked: Vec<&Tile> = shown
            .filter(|name| seen.insert(name.as_str()))
            .filter_map(|name| tiles.get(name))
            .collect();
        let previous = self.calendar.previous(week);
        let this = self.calendar.label(week);
        let requests: Vec<SeriesRequest> = super::narrative::movers(&ranked)
            .into_iter()
            .filter(|tile| tile.comparisons.contains_key("previous"))
            .filter_map(|tile| {
                let metric = self.registry.metrics.get(&tile.metric)?;
                if !adds_up(metric) || !metric.dimensions.contains(&by) {
                    return None;
                }
                let attributed = metrics::reads_attribution(self.registry, metric);
                Some(SeriesRequest {
                    metric: tile.metric.clone(),
                    from: previous,
                    to: week,
                    by: vec![by.clone()],
                    filters: Vec::new(),
                    compare: Vec::new(),
                    attribution: attributed.then_some(dashboard.attribution),
                })
            })
            .collect();
        let answers =
            futures::future::join_all(requests.iter().map(|request| service.series(request))).await;
        let mut out = Vec::new();
        for (request, answer) in requests.iter().zip(answers) {
            let Ok(series) = answer else {
                continue;
            };
            let mut changes: BTreeMap<String, f64> = BTreeMap::new();
            for point in series.points {
                let value = point
                    .dimensions
                    .get(&by)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "(none)".into());
                let sign = if point.period == this { 1.0 } else { -1.0 };
                *changes.entry(value).or_default() += sign * point.value.unwrap_or(0.0);
            }
            out.push((request.metric.clone(), super::tiles::drivers(&by, changes)));
        }
        out
    }

    /// Marks tiles whose definition (or a part's) was first served inside `first..=week`.
    fn mark_definition_changes(
        &self,
        tiles: &mut BTreeMap<String, Tile>,
        first: Period,
        week: Period,
    ) {
        let history = crate::defs::history::History::open(&self.config.project_dir);
        let (range_start, _) = self.calendar.instants(first);
        let (_, range_end) = self.calendar.instants(week);
        for (name, tile) in tiles.iter_mut() {
            let Some(metric) = self.registry.metrics.get(name) else {
                continue;
            };
            let mut names = vec![name.clone()];
            names.extend(metrics::parts(metric));
            for part in names {
                for version in history.for_metric(&part).into_iter().skip(1) {
                    if version.first_seen >= range_start && version.first_seen < range_end {
                        tile.definition_changes.push(format!(
                            "{part} changed to definition {} on {}",
                            version.hash,
                            version
                                .first_seen
                                .with_timezone(&self.config.time_zone)
                                .format("%Y-%m-%d")
                        ));
                    }
                }
            }
        }
    }

    /// The charts in page order, and the funnel (from the first funnel chart).
    async fn charts(
        &self,
        service: &MetricService<'_>,
        dashboard: &Dashboard,
        tiles: &BTreeMap<String, Tile>,
        week: Period,
    ) -> (Vec<ChartData>, Vec<FunnelStep>) {
        let label = self.calendar.label(week);
        // The breakdown charts' queries side by side, in page order.
        let mut breakdowns = futures::future::join_all(dashboard.charts.iter().filter_map(
            |chart| match &chart.kind {
                ChartKind::Breakdown { metric, by } => {
                    Some(self.by_dimension(service, metric, by, week, dashboard.attribution))
                }
                _ => None,
            },
        ))
        .await
        .into_iter();
        let mut charts = Vec::new();
        let mut funnel = Vec::new();
        for chart in &dashboard.charts {
            let data = match &chart.kind {
                ChartKind::Trend { metric } => {
                    chart_data::trend(chart, &tiles[metric], self.registry.metrics.get(metric))
                }
                ChartKind::Breakdown { metric, by } => {
                    let values = breakdowns.next().and_then(Result::ok).unwrap_or_default();
                    chart_data::breakdown(chart, &tiles[metric], by, &label, values)
                }
                ChartKind::Funnel { metrics: steps } => {
                    let steps: Vec<&Tile> = steps.iter().map(|step| &tiles[step]).collect();
                    let (data, step_rows) = chart_data::funnel(chart, &steps, &label);
                    if funnel.is_empty() {
                        funnel = step_rows;
                    }
                    data
                }
            };
            charts.push(data);
        }
        (charts, funnel)
    }

    /// One metric in one week by one dimension (`(none)` for a missing value).
    pub(super) async fn by_dimension(
        &self,
        service: &MetricService<'_>,
        metric: &str,
        by: &str,
        week: Period,
        settings: Settings,
    ) -> Result<Vec<(String, Option<f64>)>> {
        let attributed = self
            .registry
            .metrics
            .get(metric)
            .is_some_and(|m| metrics::reads_attribution(self.registry, m));
        let series = service
            .series(&SeriesRequest {
                metric: metric.to_string(),
                from: week,
                to: week,
                by: vec![by.to_string()],
                filters: Vec::new(),
                compare: Vec::new(),
                attribution: attributed.then_some(settings),
            })
            .await?;
        Ok(series
            .points
            .into_iter()
            .map(|p| {
                let value = p
                    .dimensions
                    .get(by)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "(none)".into());
                (value, p.value)
            })
            .collect())
    }

    async fn breakdown(
        &self,
        service: &MetricService<'_>,
        breakdown: &Breakdown,
        week: Period,
        settings: Settings,
    ) -> BreakdownTable {
        let mut columns = Vec::new();
        let mut values: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        let mut errors = Vec::new();
        let count = breakdown.metrics.len();
        for (index, name) in breakdown.metrics.iter().enumerate() {
            let Some(metric) = self.registry.metrics.get(name) else {
                continue;
            };
            columns.push(Column {
                metric: name.clone(),
                label: metric.label.clone(),
                unit: metric.unit,
                currency: metric.currency.clone(),
                attribution: metrics::reads_attribution(self.registry, metric)
                    .then(|| AttributionUsed::from(settings)),
            });
            match self
                .by_dimension(service, name, &breakdown.by, week, settings)
                .await
            {
                Ok(rows) => {
                    errors.push(None);
                    for (value, v) in rows {
                        values.entry(value).or_insert_with(|| vec![None; count])[index] = v;
                    }
                }
                Err(error) => errors.push(Some(error.message)),
            }
        }
        BreakdownTable {
            by: breakdown.by.clone(),
            columns,
            rows: values.into_iter().collect(),
            errors,
        }
    }

    /// One attributed metric by channel under every model, at the lookback of `settings`.
    pub async fn model_comparison(
        &self,
        service: &MetricService<'_>,
        metric: &str,
        week: Period,
        settings: Settings,
    ) -> Result<ModelComparison> {
        let definition = self
            .registry
            .metrics
            .get(metric)
            .ok_or_else(|| Error::internal("comparison metric missing"))?;
        let half_life = match settings.model {
            Model::TimeDecay { half_life } => half_life,
            _ => self.config.attribution.half_life,
        };
        let models = Model::all(half_life);
        let mut rows: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        let mut totals = vec![None; models.len()];
        // Every model at once: the first to ask reads attribution's inputs (once for every
        // model), the others wait for that read and then credit only their own model.
        let requests: Vec<SeriesRequest> = models
            .iter()
            .map(|model| SeriesRequest {
                metric: metric.to_string(),
                from: week,
                to: week,
                by: vec!["channel".into()],
                filters: Vec::new(),
                compare: Vec::new(),
                attribution: Some(settings.with_model(*model)),
            })
            .collect();
        let all = futures::future::try_join_all(requests.iter().map(|r| service.series(r))).await?;
        for (index, series) in all.into_iter().enumerate() {
            for point in series.points {
                let channel = point
                    .dimensions
                    .get("channel")
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                rows.entry(channel)
                    .or_insert_with(|| vec![None; models.len()])[index] = point.value;
                if let Some(v) = point.value {
                    totals[index] = Some(totals[index].unwrap_or(0.0) + v);
                }
            }
        }
        Ok(ModelComparison {
            metric: metric.to_string(),
            label: definition.label.clone(),
            unit: definition.unit,
            currency: definition.currency.clone(),
            lookback: crate::attribution::format_duration(settings.lookback),
            models: models.iter().map(|m| m.name().to_string()).collect(),
            rows: rows.into_iter().collect(),
            totals,
        })
    }

    /// Where every KPI of the dashboard comes from, in page order.
    fn footnotes(&self, dashboard: &Dashboard) -> Vec<Footnote> {
        self.metrics_of(dashboard)
            .iter()
            .filter_map(|name| self.registry.metrics.get(*name))
            .map(|m| Footnote {
                metric: m.name.clone(),
                label: m.label.clone(),
                sources: m.sources.clone(),
                owner: m.owner.clone(),
                hash: m.hash.clone(),
                description: m.description.clone(),
            })
            .collect()
    }
}

/// Whether a metric's values add up across a dimension's values: a SUM or COUNT over one
/// table (so each value's change is its part of the total change).
fn adds_up(metric: &Metric) -> bool {
    match &metric.kind {
        MetricKind::Simple { measure, .. } => {
            let measure = measure.trim_start().to_ascii_uppercase();
            measure.starts_with("SUM(") || measure.starts_with("COUNT(")
        }
        _ => false,
    }
}
