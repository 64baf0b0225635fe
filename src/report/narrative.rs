//! The narrative: the summary sentences of a report (what changed, what improved, what needs
//! a follow-up), from the tiles, banners and health findings. Pure: the rules live here and
//! are tested here.
//!
//! Rules:
//! - a KPI is judged against its *week comparison*: the week before, or for a to-date KPI the
//!   same point of the previous window (the metric layer puts `previous_window` in place of
//!   `previous`); a sentence names which;
//! - a conversion cohort still maturing is never judged: it enters neither list, and "What
//!   changed" only says it is maturing and how far it has been observed;
//! - "What changed" ranks the KPIs (headline and supporting) by the size of their relative
//!   change and tells the [`MOVERS`] that moved most, each with the dimension values that drove
//!   the change (filled by the report build for KPIs that add up across values);
//! - across all tiles, a change of at least the dashboard's `thresholds.change` is "improved"
//!   in the good direction and "follow-up" in the bad one (never for neutral KPIs); a
//!   behind-target KPI is a follow-up, an ahead one an improvement; a KPI that failed to
//!   compute, or has no data and no comparisons, is a follow-up; a definition change inside
//!   the weeks shown, every banner and every data-health finding are follow-ups;
//! - money reads compact (`$1.4M`), verbs agree with the label (`MQLs were 48`).

use super::model::{Report, Sentence, SentenceKind, TargetStatus, Tile, Unavailable};
use crate::defs::{Good, Thresholds};
use crate::metrics::{self, ComparisonValue};

/// How many KPIs "What changed" tells about.
pub const MOVERS: usize = 4;

/// Writes the summary: what changed for the KPIs that moved most, then what improved and what
/// needs a follow-up across all tiles.
pub fn summarise(report: &Report, thresholds: &Thresholds) -> Vec<Sentence> {
    let all: Vec<&Tile> = tiles(report).collect();
    let mut out: Vec<Sentence> = movers(&all).into_iter().filter_map(what_changed).collect();
    out.extend(
        report
            .primary
            .iter()
            .filter(|tile| tile.maturing && tile.value.is_some())
            .map(maturing_sentence),
    );
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

/// Every tile of a report, headline first, each once.
pub fn tiles(report: &Report) -> impl Iterator<Item = &Tile> {
    let mut seen = std::collections::BTreeSet::new();
    report
        .primary
        .iter()
        .chain(report.sections.iter().flat_map(|s| s.tiles.iter()))
        .filter(move |tile| seen.insert(tile.metric.clone()))
}

/// The KPIs that moved most against their week comparison, largest relative change first
/// (maturing cohorts and KPIs without a value or a base left out), at most [`MOVERS`].
pub fn movers<'t>(tiles: &[&'t Tile]) -> Vec<&'t Tile> {
    let mut ranked: Vec<(&Tile, f64)> = tiles
        .iter()
        .filter(|tile| !tile.maturing && tile.value.is_some())
        .filter_map(|tile| Some((*tile, week_comparison(tile)?.1.change_ratio?)))
        .collect();
    ranked.sort_by(|a, b| {
        b.1.abs()
            .total_cmp(&a.1.abs())
            .then(a.0.metric.cmp(&b.0.metric))
    });
    ranked
        .into_iter()
        .take(MOVERS)
        .map(|(tile, _)| tile)
        .collect()
}

/// The comparison a KPI is judged by, with the words for its base: the week before, or for a
/// to-date KPI the same point of the previous window.
pub fn week_comparison(tile: &Tile) -> Option<(String, &ComparisonValue)> {
    if tile.maturing {
        return None;
    }
    if let Some(c) = tile.comparisons.get("previous") {
        return Some(("the week before".to_string(), c));
    }
    let c = tile.comparisons.get("previous_window")?;
    let basis = c
        .basis
        .clone()
        .unwrap_or_else(|| "the same point of the previous window".into());
    Some((format!("{basis} ({})", c.period), c))
}

/// The value of a tile as a sentence shows it (compact money).
fn shown(tile: &Tile, value: Option<f64>) -> String {
    metrics::format_display(tile.unit, tile.currency.as_deref(), value, true)
}

/// "was" or "were", by the label's head noun (`MQLs`, `Ad clicks`: plural; `Cost per MQL`,
/// `Pipeline created, quarter to date`: singular).
fn was(label: &str) -> &'static str {
    if plural(label) {
        "were"
    } else {
        "was"
    }
}

/// Whether a label names a plural: its first word group (before a comma, `per`, `within`, an
/// arrow or a parenthesis) ends in a plural noun.
fn plural(label: &str) -> bool {
    let head = [",", " per ", " within ", " →", " (", " to date"]
        .iter()
        .fold(label, |text, cut| text.split(cut).next().unwrap_or(text));
    let last = head.split_whitespace().last().unwrap_or_default();
    let lower = last.to_lowercase();
    let exceptions = ["revenue", "spend", "pipeline", "rate", "created"];
    last.ends_with('s')
        && !lower.ends_with("ss")
        && !lower.ends_with("us")
        && !lower.ends_with("is")
        && !exceptions.contains(&lower.as_str())
}

/// A mover: its change against its week comparison, its value and base, and its drivers
/// (`None` without a comparison, which [`movers`] never returns).
fn what_changed(tile: &Tile) -> Option<Sentence> {
    let (against, c) = week_comparison(tile)?;
    let ratio = c.change_ratio.unwrap_or(0.0);
    let verb = if ratio > 0.0 {
        "rose"
    } else if ratio < 0.0 {
        "fell"
    } else {
        "held"
    };
    let mut text = if ratio == 0.0 {
        format!(
            "{} held at {} against {against}",
            tile.label,
            shown(tile, tile.value)
        )
    } else {
        format!(
            "{} {verb} {:.1}% against {against}, to {} from {}",
            tile.label,
            ratio.abs() * 100.0,
            shown(tile, tile.value),
            shown(tile, c.value)
        )
    };
    let drivers: Vec<String> = tile
        .drivers
        .iter()
        .take(2)
        .map(|d| {
            let (sign, what) = if d.change >= 0.0 {
                ("+", "rose")
            } else {
                ("-", "fell")
            };
            let amount = shown(tile, Some(d.change.abs()));
            format!(
                "{} ({sign}{amount}, {:.0}% of what {what})",
                d.value,
                d.share * 100.0
            )
        })
        .collect();
    if let Some(by) = tile.drivers.first().map(|d| d.by.as_str()) {
        text.push_str(&format!("; by {by}, mostly {}", drivers.join(" and ")));
    }
    text.push('.');
    Some(sentence(SentenceKind::Changed, text, tile))
}

/// A headline conversion cohort still maturing: its value, how far it has been observed, and
/// that it is not compared.
fn maturing_sentence(tile: &Tile) -> Sentence {
    let observed = tile
        .maturity
        .map(|m| format!(" ({})", m.describe()))
        .unwrap_or_default();
    sentence(
        SentenceKind::Changed,
        format!(
            "{} {} {} for a cohort still maturing{observed}; it is not compared until its window closes.",
            tile.label,
            was(&tile.label),
            shown(tile, tile.value)
        ),
        tile,
    )
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
        if tile.comparisons.is_empty() && !tile.maturing || *reason != Unavailable::NoData {
            out.push(sentence(
                SentenceKind::FollowUp,
                format!(
                    "{} {} unavailable: {reason}.",
                    tile.label,
                    if plural(&tile.label) { "are" } else { "is" }
                ),
                tile,
            ));
        }
        return out;
    }
    if tile.maturing {
        return out;
    }
    out.extend(change_sentence(tile, thresholds.change));
    out.extend(target_sentence(tile));
    out
}

/// A change of at least `threshold` against the week comparison, judged by the KPI's good
/// direction.
fn change_sentence(tile: &Tile, threshold: f64) -> Option<Sentence> {
    let (against, c) = week_comparison(tile)?;
    let change = c.change_ratio?;
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
        "{} {} {:.1}% against {against}, to {}.",
        tile.label,
        if change > 0.0 { "rose" } else { "fell" },
        change.abs() * 100.0,
        shown(tile, tile.value)
    );
    Some(sentence(kind, text, tile))
}

/// Behind target is a follow-up; ahead of it, an improvement.
fn target_sentence(tile: &Tile) -> Option<Sentence> {
    let target = shown(tile, tile.target);
    let (is, its) = if plural(&tile.label) {
        ("are", "their")
    } else {
        ("is", "its")
    };
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
                    "{} {is} {side} {its} target of {target} ({share:.0}% of it).",
                    tile.label
                ),
                tile,
            ))
        }
        TargetStatus::Ahead => Some(sentence(
            SentenceKind::Improved,
            format!("{} {is} ahead of {its} target of {target}.", tile.label),
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
    use crate::report::model::{Driver, Health, TileSection};
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
            previous_week: None,
            next_week: None,
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
    fn what_changed_ranks_the_kpis_that_moved_most_and_names_their_drivers() {
        let mut pipeline = changed("pipeline", 2_000_000.0, 1.0, Good::Up);
        pipeline.label = "Pipeline created".into();
        pipeline.unit = Unit::Currency;
        pipeline.currency = Some("USD".into());
        pipeline.drivers = vec![
            Driver {
                by: "channel".into(),
                value: "paid_search".into(),
                change: 800_000.0,
                share: 0.8,
            },
            Driver {
                by: "channel".into(),
                value: "email".into(),
                change: 150_000.0,
                share: 0.15,
            },
            Driver {
                by: "channel".into(),
                value: "events".into(),
                change: 50_000.0,
                share: 0.05,
            },
        ];
        let small = changed("sessions", 101.0, 0.01, Good::Up);
        let mut movers: Vec<Tile> = (0..MOVERS)
            .map(|i| changed(&format!("m{i}"), 100.0, 0.2 + i as f64 * 0.01, Good::Up))
            .collect();
        movers.push(small);
        let sentences = summarise(&report(vec![pipeline], movers), &THRESHOLDS);
        let changed = of_kind(&sentences, SentenceKind::Changed);
        assert_eq!(changed.len(), MOVERS, "{changed:?}");
        assert_eq!(
            changed[0],
            "Pipeline created rose 100.0% against the week before, to $2.0M from $1.0M; by channel, mostly paid_search (+$800.0K, 80% of what rose) and email (+$150.0K, 15% of what rose)."
        );
        assert!(changed[1].starts_with("m3 rose 23.0%"), "{changed:?}");
        assert!(
            !changed.iter().any(|s| s.starts_with("sessions")),
            "the smallest move is left out"
        );
    }

    #[test]
    fn a_maturing_cohort_is_never_judged() {
        let mut cohort = changed("mql_to_sql", 0.064, -0.82, Good::Up);
        cohort.label = "MQL → SQL within 30 days".into();
        cohort.unit = Unit::Percent;
        cohort.comparisons.clear();
        cohort.maturing = true;
        cohort.maturity = Some(crate::metrics::Maturity {
            days_observed: 0,
            days_observed_first: 6,
            days_needed: 30,
        });
        cohort.target = Some(0.4);
        cohort.target_status = Some(TargetStatus::Behind);
        let sentences = summarise(&report(vec![cohort], Vec::new()), &THRESHOLDS);
        assert_eq!(
            sentences.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(),
            vec!["MQL → SQL within 30 days was 6.4% for a cohort still maturing (0 to 6 of its 30 days observed); it is not compared until its window closes."]
        );
    }

    #[test]
    fn a_to_date_kpi_is_judged_against_the_same_point_of_the_previous_window() {
        let mut qtd = changed("pipeline_qtd", 6_000_000.0, 0.0, Good::Up);
        qtd.label = "Pipeline created, quarter to date".into();
        qtd.unit = Unit::Currency;
        qtd.currency = Some("USD".into());
        let mut previous = qtd.comparisons.remove("previous").expect("previous");
        previous.period = "2026-W35".into();
        previous.value = Some(5_000_000.0);
        previous.change_ratio = Some(0.2);
        previous.basis = Some("the same point of the previous quarter".into());
        qtd.comparisons.insert("previous_window".into(), previous);
        let sentences = summarise(&report(Vec::new(), vec![qtd]), &THRESHOLDS);
        assert_eq!(
            of_kind(&sentences, SentenceKind::Improved),
            vec!["Pipeline created, quarter to date rose 20.0% against the same point of the previous quarter (2026-W35), to $6.0M."]
        );
        assert!(!sentences.iter().any(|s| s.text.contains("week over week")));
    }

    #[test]
    fn verbs_agree_with_the_label() {
        for label in [
            "MQLs",
            "Ad clicks",
            "Sessions",
            "SQLs",
            "New contacts",
            "Form submits",
        ] {
            assert!(plural(label), "{label}");
        }
        for label in [
            "Cost per MQL",
            "Pipeline created",
            "Pipeline created, quarter to date",
            "Closed-won revenue",
            "Ad spend",
            "Session conversion rate",
            "MQL → SQL within 30 days",
            "CTR",
            "Email click rate",
        ] {
            assert!(!plural(label), "{label}");
        }
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
            vec!["mqls rose 10.0% against the week before, to 110."]
        );
        assert_eq!(
            of_kind(&sentences, SentenceKind::FollowUp),
            vec![
                "cost rose 10.0% against the week before, to 110.",
                "fell fell 50.0% against the week before, to 50."
            ]
        );
    }

    #[test]
    fn targets_drive_improved_and_follow_up() {
        let mut behind = tile("pipeline", Unit::Currency, Some(90.0));
        behind.target = Some(100.0);
        behind.currency = Some("USD".into());
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
            vec!["pipeline is behind its target of $100.00 (90% of it)."]
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
