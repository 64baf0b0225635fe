//! KPI tiles: a metric's weekly series → the value of the week, its comparisons, target and
//! target status, sparkline, or the reason it is unavailable. Pure.

use std::collections::BTreeMap;

use super::model::{Driver, TargetStatus, Tile, Unavailable};
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
        currency: metric.currency.clone(),
        maturing: last.is_some_and(|p| p.maturing),
        maturity: last.and_then(|p| p.maturity),
        maturing_weeks: series
            .points
            .iter()
            .filter(|p| p.maturing)
            .map(|p| p.period.clone())
            .collect(),
        drivers: Vec::new(),
    }
}

/// The drivers of a change from each dimension value's change: the values that moved with
/// the total (same sign), largest first, each with its share of their sum; values that moved
/// against it are left out (they explain nothing of the direction).
pub fn drivers(by: &str, changes: BTreeMap<String, f64>) -> Vec<Driver> {
    let total: f64 = changes.values().sum();
    if total == 0.0 {
        return Vec::new();
    }
    let with_total: Vec<(String, f64)> = changes
        .into_iter()
        .filter(|(_, change)| *change != 0.0 && (*change > 0.0) == (total > 0.0))
        .collect();
    let moved: f64 = with_total.iter().map(|(_, c)| c).sum();
    let mut out: Vec<Driver> = with_total
        .into_iter()
        .map(|(value, change)| Driver {
            by: by.to_string(),
            value,
            change,
            share: change / moved,
        })
        .collect();
    out.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.value.cmp(&b.value)));
    out
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
        currency: metric.currency.clone(),
        maturing: false,
        maturity: None,
        maturing_weeks: Vec::new(),
        drivers: Vec::new(),
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
            currency: None,
            maturing: false,
            maturity: None,
            maturing_weeks: Vec::new(),
            drivers: Vec::new(),
        }
    }

    #[test]
    fn drivers_are_the_values_that_moved_with_the_total() {
        let changes = BTreeMap::from([
            ("paid_search".to_string(), 60.0),
            ("email".to_string(), 20.0),
            ("events".to_string(), -30.0),
            ("organic".to_string(), 0.0),
        ]);
        let drivers = drivers("channel", changes);
        let shares: Vec<(&str, f64)> = drivers
            .iter()
            .map(|d| (d.value.as_str(), d.share))
            .collect();
        assert_eq!(shares, vec![("paid_search", 0.75), ("email", 0.25)]);
        let falling = drivers_of(&[("a", -10.0), ("b", -30.0), ("c", 5.0)]);
        assert_eq!(
            falling,
            vec![("b".to_string(), 0.75), ("a".to_string(), 0.25)]
        );
        assert!(
            drivers_of(&[("a", 5.0), ("b", -5.0)]).is_empty(),
            "no net change"
        );
    }

    fn drivers_of(changes: &[(&str, f64)]) -> Vec<(String, f64)> {
        let changes = changes.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        drivers("d", changes)
            .into_iter()
            .map(|d| (d.value, d.share))
            .collect()
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
                basis: None,
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
