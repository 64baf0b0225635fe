//! KPI tiles: a metric's weekly series → the value of the week, its comparisons, target and
//! target status, sparkline, or the reason it is unavailable. Pure.

use std::collections::BTreeMap;

use super::model::{TargetStatus, Tile, Unavailable};
use crate::defs::{Good, Metric, Thresholds};
use crate::metrics::Series;

/// The tile of the series' last period (the report week).
pub fn tile_from(metric: &Metric, series: &Series, thresholds: &Thresholds) -> Tile {
    let last = series.points.last();
    let value = last.and_then(|p| p.value);
    let target = last.and_then(|p| p.target);
    Tile {
        metric: metric.name.clone(),
        label: metric.label.clone(),
        unit: metric.unit,
        good: metric.good,
        value,
        comparisons: last.map(|p| p.comparisons.clone()).unwrap_or_default(),
        target,
        target_status: target_status(value, target, metric.good, thresholds.behind_target),
        sparkline: series
            .points
            .iter()
            .map(|p| (p.period.clone(), p.value))
            .collect(),
        unavailable: value.is_none().then_some(Unavailable::NoData),
        sources: metric.sources.clone(),
        attribution: series.attribution.clone(),
        definition_changes: Vec::new(),
    }
}

/// A tile for a metric that could not be computed, with the reason.
pub fn unavailable_tile(metric: &Metric, reason: String) -> Tile {
    Tile {
        metric: metric.name.clone(),
        label: metric.label.clone(),
        unit: metric.unit,
        good: metric.good,
        value: None,
        comparisons: BTreeMap::new(),
        target: None,
        target_status: None,
        sparkline: Vec::new(),
        unavailable: Some(Unavailable::Failed(reason)),
        sources: metric.sources.clone(),
        attribution: None,
        definition_changes: Vec::new(),
    }
}

/// Where a value stands against a (non-zero) target. With `behind` the behind-target share
/// (0.95): up-is-good KPIs are behind below 95 % of target and ahead from 100 %; down-is-good
/// KPIs mirror it (behind above 105 %, ahead at or below 100 %).
pub fn target_status(
    value: Option<f64>,
    target: Option<f64>,
    good: Good,
    behind: f64,
) -> Option<TargetStatus> {
    let (value, target) = (value?, target?);
    if target == 0.0 {
        return None;
    }
    let share = value / target;
    Some(match good {
        Good::Down if share > 2.0 - behind => TargetStatus::Behind,
        Good::Down if share <= 1.0 => TargetStatus::Ahead,
        Good::Down => TargetStatus::OnTrack,
        _ if share < behind => TargetStatus::Behind,
        _ if share >= 1.0 => TargetStatus::Ahead,
        _ => TargetStatus::OnTrack,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::defs::Unit;
    use crate::metrics::ComparisonValue;

    /// A tile with a value and nothing else, for tests of the pure report parts.
    pub(crate) fn tile(name: &str, unit: Unit, value: Option<f64>) -> Tile {
        Tile {
            metric: name.into(),
            label: name.into(),
            unit,
            good: Good::Up,
            value,
            comparisons: BTreeMap::new(),
            target: None,
            target_status: None,
            sparkline: Vec::new(),
            unavailable: value.is_none().then_some(Unavailable::NoData),
            sources: vec!["crm".into()],
            attribution: None,
            definition_changes: Vec::new(),
        }
    }

    /// A tile with a previous-week comparison of `change` (a share).
    pub(crate) fn changed(name: &str, value: f64, change: f64, good: Good) -> Tile {
        let mut tile = tile(name, Unit::Count, Some(value));
        tile.good = good;
        let base = value / (1.0 + change);
        tile.comparisons.insert(
            "previous".into(),
            ComparisonValue {
                period: "2026-W44".into(),
                value: Some(base),
                change: Some(value - base),
                change_ratio: Some(change),
            },
        );
        tile
    }

    #[test]
    fn up_is_good_targets() {
        let status = |v: f64| target_status(Some(v), Some(100.0), Good::Up, 0.95);
        assert_eq!(status(94.9), Some(TargetStatus::Behind));
        assert_eq!(status(95.0), Some(TargetStatus::OnTrack));
        assert_eq!(status(99.9), Some(TargetStatus::OnTrack));
        assert_eq!(status(100.0), Some(TargetStatus::Ahead));
        assert_eq!(status(250.0), Some(TargetStatus::Ahead));
    }

    #[test]
    fn down_is_good_targets_mirror_the_threshold() {
        let status = |v: f64| target_status(Some(v), Some(100.0), Good::Down, 0.95);
        assert_eq!(status(80.0), Some(TargetStatus::Ahead));
        assert_eq!(status(100.0), Some(TargetStatus::Ahead));
        assert_eq!(status(104.0), Some(TargetStatus::OnTrack));
        assert_eq!(status(105.1), Some(TargetStatus::Behind));
    }

    #[test]
    fn no_value_no_target_or_a_zero_target_has_no_status() {
        assert_eq!(target_status(None, Some(1.0), Good::Up, 0.95), None);
        assert_eq!(target_status(Some(1.0), None, Good::Up, 0.95), None);
        assert_eq!(target_status(Some(1.0), Some(0.0), Good::Up, 0.95), None);
    }

    #[test]
    fn unavailable_reasons_round_trip_through_their_text() {
        let json = serde_json::to_string(&Unavailable::NoData).expect("json");
        assert_eq!(json, "\"no data for this week\"");
        let back: Unavailable = serde_json::from_str(&json).expect("back");
        assert_eq!(back, Unavailable::NoData);
        let failed: Unavailable = serde_json::from_str("\"table gone\"").expect("failed");
        assert_eq!(failed, Unavailable::Failed("table gone".into()));
    }
}
