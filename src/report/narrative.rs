//! The narrative: the summary sentences of a report (what changed, what improved, what needs
//! a follow-up), from the tiles, banners and health findings. Pure: the rules live here and
//! are tested here.
//!
//! Rules: every headline KPI with a value gets a "changed" sentence with its week-over-week
//! and year-ago changes; across all tiles, a week-over-week change of at least the dashboard's
//! `thresholds.change` is "improved" in the good direction and "follow-up" in the bad one
//! (never for neutral KPIs); a behind-target KPI is a follow-up, an ahead one an improvement; a
//! KPI that failed to compute, or has no data and no comparisons, is a follow-up; a definition
//! change inside the weeks shown, every banner and every data-health finding are follow-ups.

use super::model::{Report, Sentence, SentenceKind, TargetStatus, Tile, Unavailable};
use crate::defs::{Good, Thresholds};
use crate::metrics;

/// Writes the summary: what changed for each headline KPI, then what improved and what needs a
/// follow-up across all tiles (changes beyond the threshold in the good or bad direction,
/// target status, unavailable KPIs, data-health findings).
pub fn summarise(report: &Report, thresholds: &Thresholds) -> Vec<Sentence> {
    let mut out: Vec<Sentence> = report.primary.iter().filter_map(what_changed).collect();
    let all = report
        .primary
        .iter()
        .chain(report.sections.iter().flat_map(|s| s.tiles.iter()));
    for tile in all {
        out.extend(tile_sentences(tile, thresholds));
    }
    for text in report.banners.iter().chain(&report.health.findings) {
        out.push(Sentence {
            kind: SentenceKind::FollowUp,
            text: text.clone(),
            metric: None,
        });
    }
    out
}

/// A headline KPI's value with its week-over-week and year-ago changes.
fn what_changed(tile: &Tile) -> Option<Sentence> {
    let value = tile.value?;
    let percent = |r: f64| format!("{:+.1}%", r * 100.0);
    let mut parts = vec![format!(
        "{} was {}",
        tile.label,
        metrics::format_value(tile.unit, Some(value))
    )];
    let change = |name: &str| tile.comparisons.get(name).and_then(|c| c.change_ratio);
    if let Some(c) = change("previous") {
        parts.push(format!("{} against the week before", percent(c)));
    }
    if let Some(c) = change("year_ago") {
        parts.push(format!("{} against a year ago", percent(c)));
    }
    Some(sentence(
        SentenceKind::Changed,
        format!("{}.", parts.join(", ")),
        tile,
    ))
}

/// What one tile adds to the improved and follow-up lists.
fn tile_sentences(tile: &Tile, thresholds: &Thresholds) -> Vec<Sentence> {
    let mut out: Vec<Sentence> = tile
        .definition_changes
        .iter()
        .map(|change| {
            sentence(
                SentenceKind::FollowUp,
                format!(
                    "{}: {change}; weeks before and after are computed differently.",
                    tile.label
                ),
                tile,
            )
        })
        .collect();
    if let Some(reason) = &tile.unavailable {
        if tile.comparisons.is_empty() || *reason != Unavailable::NoData {
            out.push(sentence(
                SentenceKind::FollowUp,
                format!("{} is unavailable: {reason}.", tile.label),
                tile,
            ));
        }
        return out;
    }
    out.extend(weekly_change(tile, thresholds.change));
    out.extend(target_sentence(tile));
    out
}

/// A week-over-week change of at least `threshold`, judged by the KPI's good direction.
fn weekly_change(tile: &Tile, threshold: f64) -> Option<Sentence> {
    let change = tile
        .comparisons
        .get("previous")
        .and_then(|c| c.change_ratio)?;
    if change.abs() < threshold || tile.good == Good::Neutral {
        return None;
    }
    let better = (change > 0.0) == (tile.good == Good::Up);
    let kind = if better {
        SentenceKind::Improved
    } else {
        SentenceKind::FollowUp
    };
    let text = format!(
        "{} {} {:.1}% week over week, to {}.",
        tile.label,
        if change > 0.0 { "rose" } else { "fell" },
        change.abs() * 100.0,
        metrics::format_value(tile.unit, tile.value)
    );
    Some(sentence(kind, text, tile))
}

/// Behind target is a follow-up; ahead of it, an improvement.
fn target_sentence(tile: &Tile) -> Option<Sentence> {
    let target = metrics::format_value(tile.unit, tile.target);
    match tile.target_status? {
        TargetStatus::Behind => {
            let side = if tile.good == Good::Down {
                "above"
            } else {
                "behind"
            };
            let share = tile
                .value
                .zip(tile.target)
                .map(|(v, t)| v / t * 100.0)
                .unwrap_or(0.0);
            Some(sentence(
                SentenceKind::FollowUp,
                format!(
                    "{} is {side} its target of {target} ({share:.0}% of it).",
                    tile.label
                ),
                tile,
            ))
        }
        TargetStatus::Ahead => Some(sentence(
            SentenceKind::Improved,
            format!("{} is ahead of its target of {target}.", tile.label),
            tile,
        )),
        TargetStatus::OnTrack => None,
    }
}

fn sentence(kind: SentenceKind, text: String, tile: &Tile) -> Sentence {
    Sentence {
        kind,
        text,
        metric: Some(tile.metric.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::Unit;
    use crate::report::model::{Health, TileSection};
    use crate::report::tiles::tests::{changed, tile};

    const THRESHOLDS: Thresholds = Thresholds {
        change: 0.1,
        behind_target: 0.95,
    };

    fn report(primary: Vec<Tile>, supporting: Vec<Tile>) -> Report {
        Report {
            dashboard: "d".into(),
            title: "D".into(),
            description: String::new(),
            audience: String::new(),
            week: "2026-W45".into(),
            start: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).expect("date"),
            end: chrono::NaiveDate::from_ymd_opt(2026, 11, 8).expect("date"),
            time_zone: "UTC".into(),
            attribution: crate::metrics::AttributionUsed {
                model: "linear".into(),
                lookback: "30d".into(),
                label: "linear, 30d lookback".into(),
            },
            definitions_version: "v".into(),
            complete: true,
            banners: Vec::new(),
            freshness: Vec::new(),
            summary: Vec::new(),
            primary,
            sections: vec![TileSection {
                title: "Supporting KPIs".into(),
                tiles: supporting,
            }],
            charts: Vec::new(),
            funnel: Vec::new(),
            breakdown: None,
            attribution_comparison: None,
            health: Health::default(),
            footnotes: Vec::new(),
        }
    }

    fn of_kind(sentences: &[Sentence], kind: SentenceKind) -> Vec<&str> {
        sentences
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.text.as_str())
            .collect()
    }

    #[test]
    fn headline_kpis_say_what_changed() {
        let sentences = summarise(
            &report(vec![changed("mqls", 110.0, 0.1, Good::Up)], Vec::new()),
            &THRESHOLDS,
        );
        assert_eq!(
            of_kind(&sentences, SentenceKind::Changed),
            vec!["mqls was 110, +10.0% against the week before."]
        );
    }

    #[test]
    fn changes_at_the_threshold_are_judged_by_the_good_direction() {
        let sentences = summarise(
            &report(
                Vec::new(),
                vec![
                    changed("mqls", 110.0, 0.1, Good::Up),
                    changed("cost", 110.0, 0.1, Good::Down),
                    changed("small", 109.0, 0.09, Good::Up),
                    changed("neutral", 200.0, 1.0, Good::Neutral),
                    changed("fell", 50.0, -0.5, Good::Up),
                ],
            ),
            &THRESHOLDS,
        );
        assert_eq!(
            of_kind(&sentences, SentenceKind::Improved),
            vec!["mqls rose 10.0% week over week, to 110."]
        );
        assert_eq!(
            of_kind(&sentences, SentenceKind::FollowUp),
            vec![
                "cost rose 10.0% week over week, to 110.",
                "fell fell 50.0% week over week, to 50."
            ]
        );
    }

    #[test]
    fn targets_drive_improved_and_follow_up() {
        let mut behind = tile("pipeline", Unit::Currency, Some(90.0));
        behind.target = Some(100.0);
        behind.target_status = Some(TargetStatus::Behind);
        let mut ahead = tile("won", Unit::Count, Some(12.0));
        ahead.target = Some(10.0);
        ahead.target_status = Some(TargetStatus::Ahead);
        let mut on_track = tile("sqls", Unit::Count, Some(9.7));
        on_track.target = Some(10.0);
        on_track.target_status = Some(TargetStatus::OnTrack);
        let sentences = summarise(
            &report(Vec::new(), vec![behind, ahead, on_track]),
            &THRESHOLDS,
        );
        assert_eq!(
            of_kind(&sentences, SentenceKind::FollowUp),
            vec!["pipeline is behind its target of 100.00 (90% of it)."]
        );
        assert_eq!(
            of_kind(&sentences, SentenceKind::Improved),
            vec!["won is ahead of its target of 10."]
        );
    }

    #[test]
    fn unavailable_kpis_need_a_follow_up_unless_only_this_week_is_empty() {
        let mut failed = tile("spend", Unit::Currency, None);
        failed.unavailable = Some(Unavailable::Failed("table ads.spend cannot be read".into()));
        let empty_with_history = changed("quiet", 0.0, 0.0, Good::Up);
        let mut empty_with_history = Tile {
            value: None,
            unavailable: Some(Unavailable::NoData),
            ..empty_with_history
        };
        empty_with_history.label = "quiet".into();
        let empty_without_history = tile("new", Unit::Count, None);
        let sentences = summarise(
            &report(
                Vec::new(),
                vec![failed, empty_with_history, empty_without_history],
            ),
            &THRESHOLDS,
        );
        assert_eq!(
            of_kind(&sentences, SentenceKind::FollowUp),
            vec![
                "spend is unavailable: table ads.spend cannot be read.",
                "new is unavailable: no data for this week."
            ]
        );
    }

    #[test]
    fn banners_findings_and_definition_changes_are_follow_ups() {
        let mut edited = tile("mqls", Unit::Count, Some(5.0));
        edited
            .definition_changes
            .push("mqls changed to definition abcd on 2026-11-04".into());
        let mut report = report(Vec::new(), vec![edited]);
        report.banners.push("2026-W45 is not complete yet.".into());
        report
            .health
            .findings
            .push("Table x cannot be read.".into());
        let sentences = summarise(&report, &THRESHOLDS);
        assert_eq!(
            of_kind(&sentences, SentenceKind::FollowUp),
            vec![
                "mqls: mqls changed to definition abcd on 2026-11-04; weeks before and after are computed differently.",
                "2026-W45 is not complete yet.",
                "Table x cannot be read."
            ]
        );
    }
}
