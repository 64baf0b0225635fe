//! The credit rules against the reference vectors in `../shared/fixtures/attribution/`, and
//! properties that must hold for any input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};

use super::markov::{channel_weights, removal_effects, PathCount};
use super::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/attribution")
}

/// Splits a CSV file into rows of fields (quotes allowed), keyed by the header.
fn read_csv(relative: &str) -> Vec<BTreeMap<String, String>> {
    let path = fixtures().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (is ../shared beside the repository?)",
            path.display()
        )
    });
    let split = |line: &str| {
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut field)),
                other => field.push(other),
            }
        }
        fields.push(field);
        fields
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split(lines.next().expect("header"));
    lines
        .map(|line| header.iter().cloned().zip(split(line)).collect())
        .collect()
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn cents(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    let value: f64 = text.parse().expect("money");
    Some((value * 100.0).round() as i64)
}

fn edge_inputs() -> (Vec<Touch>, Vec<Conversion>) {
    let touches = read_csv("edge_cases/touches.csv")
        .into_iter()
        .map(|r| Touch {
            id: r["touch_id"].clone(),
            entity: r["user_id"].clone(),
            ts: instant(&r["ts"]),
            channel: r["channel"].clone(),
            campaign: Some(r["campaign"].clone()).filter(|c| !c.is_empty()),
        })
        .collect();
    let conversions = read_csv("edge_cases/conversions.csv")
        .into_iter()
        .map(|r| Conversion {
            id: r["conversion_id"].clone(),
            entity: r["user_id"].clone(),
            ts: instant(&r["ts"]),
            revenue_cents: cents(&r["revenue"]),
            kind: Some(r["conversion_type"].clone()),
        })
        .collect();
    (touches, conversions)
}

const DAYS_30: i64 = 30;

#[test]
fn edge_cases_reproduce_every_expected_credit() {
    let (touches, conversions) = edge_inputs();
    let expected = read_csv("edge_cases/expected_credits.csv");
    let models = [
        ("first_touch", Model::FirstTouch),
        ("last_touch", Model::LastTouch),
        ("last_non_direct", Model::LastNonDirect),
        ("linear", Model::Linear),
        ("position_based_40_20_40", Model::PositionBased),
        (
            "time_decay_half_life_7d",
            Model::TimeDecay {
                half_life: Duration::days(7),
            },
        ),
    ];
    for (column, model) in models {
        let credits = attribute(&touches, &conversions, model, Duration::days(DAYS_30));
        assert_eq!(
            credits.len(),
            expected.len(),
            "{column}: one row per (conversion, touch)"
        );
        for row in &expected {
            let touch = Some(row["touch_id"].clone()).filter(|t| !t.is_empty());
            let credit = credits
                .iter()
                .find(|c| c.conversion_id == row["conversion_id"] && c.touch_id == touch)
                .unwrap_or_else(|| {
                    panic!(
                        "{column}: no credit for {} {:?}",
                        row["conversion_id"], touch
                    )
                });
            let want: f64 = row[column].parse().expect("fraction");
            assert!(
                (credit.credit - want).abs() < 1e-9,
                "{column} {} {:?}: {} vs {want}",
                row["conversion_id"],
                touch,
                credit.credit
            );
            assert_eq!(credit.channel, row["channel"]);
            assert_eq!(
                credit.position.map(|p| p.to_string()).unwrap_or_default(),
                row["position"]
            );
            // Revenue to the cent: within one cent of fraction × revenue.
            if let (Some(revenue), Some(got)) = (cents(&row["revenue"]), credit.revenue_cents) {
                assert!(
                    (got as f64 - want * revenue as f64).abs() < 1.0 + 1e-9,
                    "{column} revenue {got} vs {}",
                    want * revenue as f64
                );
            }
        }
        for conversion in &conversions {
            let rows: Vec<&Credit> = credits
                .iter()
                .filter(|c| c.conversion_id == conversion.id)
                .collect();
            let total: f64 = rows.iter().map(|c| c.credit).sum();
            assert!(
                (total - 1.0).abs() < 1e-12,
                "{column} {}: credits sum to {total}",
                conversion.id
            );
            if let Some(revenue) = conversion.revenue_cents {
                assert_eq!(
                    rows.iter()
                        .map(|c| c.revenue_cents.expect("cents"))
                        .sum::<i64>(),
                    revenue,
                    "{column} {}",
                    conversion.id
                );
            } else {
                assert!(rows.iter().all(|c| c.revenue_cents.is_none()));
            }
        }
    }
    // 9.99 split in halves is 4.99 then 5.00: the tie goes to the later touch.
    let linear = attribute(
        &touches,
        &conversions,
        Model::Linear,
        Duration::days(DAYS_30),
    );
    let c7: Vec<i64> = linear
        .iter()
        .filter(|c| c.conversion_id == "c7")
        .map(|c| c.revenue_cents.expect("cents"))
        .collect();
    assert_eq!(c7, vec![499, 500]);
}

#[test]
fn window_membership_follows_the_exact_rule() {
    let (touches, conversions) = edge_inputs();
    for row in read_csv("edge_cases/window_membership.csv") {
        let conversion = conversions
            .iter()
            .find(|c| c.id == row["conversion_id"])
            .expect("conversion");
        let own: Vec<Touch> = touches
            .iter()
            .filter(|t| t.entity == conversion.entity)
            .cloned()
            .collect();
        let inside = path(&own, conversion, Duration::days(DAYS_30))
            .iter()
            .any(|t| t.id == row["touch_id"]);
        assert_eq!(
            inside,
            row["in_window_exact_30x24h_inclusive"] == "1",
            "{} {}",
            row["conversion_id"],
            row["touch_id"]
        );
    }
}

#[test]
fn time_decay_uses_continuous_age() {
    let rows = read_csv("edge_cases/time_decay_half_life_7d.csv");
    let mut cases: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for row in rows {
        let age: f64 = row["age_days_before_conversion"].parse().expect("age");
        let want: f64 = row["credit_continuous_2^(-age/7)"].parse().expect("credit");
        cases
            .entry(row["case"].clone())
            .or_default()
            .push((age, want));
    }
    let conversion_ts = instant("2024-06-01T00:00:00Z");
    for (case, rows) in cases {
        let touches: Vec<Touch> = rows
            .iter()
            .enumerate()
            .map(|(i, (age, _))| Touch {
                id: format!("t{i}"),
                entity: "u".into(),
                ts: conversion_ts - Duration::milliseconds((age * 86_400_000.0).round() as i64),
                channel: "x".into(),
                campaign: None,
            })
            .collect();
        let path: Vec<&Touch> = touches.iter().collect();
        let mut ordered = path.clone();
        ordered.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        let fractions = fractions(
            &ordered,
            conversion_ts,
            Model::TimeDecay {
                half_life: Duration::days(7),
            },
            &|_| 1.0,
        );
        for (touch, fraction) in ordered.iter().zip(fractions) {
            let index: usize = touch.id[1..].parse().expect("index");
            assert!(
                (fraction - rows[index].1).abs() < 1e-9,
                "{case} touch {index}: {fraction} vs {}",
                rows[index].1
            );
        }
    }
}

/// Builds one entity per path instance, touches a day apart, converting (or not) after them.
fn synthetic(paths: &[(Vec<&str>, usize, usize)]) -> (Vec<Touch>, Vec<Conversion>) {
    let (mut touches, mut conversions) = (Vec::new(), Vec::new());
    let end = instant("2024-06-01T00:00:00Z");
    let mut entity = 0;
    for (channels, converted, _) in paths {
        for _ in 0..*converted {
            entity += 1;
            for (i, channel) in channels.iter().enumerate() {
                let ts = end - Duration::days((channels.len() - i) as i64);
                touches.push(Touch {
                    id: format!("e{entity}t{i}"),
                    entity: format!("e{entity}"),
                    ts,
                    channel: channel.to_string(),
                    campaign: None,
                });
            }
            conversions.push(Conversion {
                id: format!("c{entity}"),
                entity: format!("e{entity}"),
                ts: end,
                revenue_cents: None,
                kind: None,
            });
        }
    }
    (touches, conversions)
}

fn channel_totals(credits: &[Credit]) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for credit in credits {
        *totals.entry(credit.channel.clone()).or_insert(0.0) += credit.credit;
    }
    totals
}

fn parse_path(text: &str) -> Vec<&str> {
    text.split('>').map(str::trim).collect()
}

#[test]
fn mta_mit_journeys_match_the_heuristic_models() {
    let fixture = read_csv("mta_mit/journey_data_fixture.csv");
    let paths: Vec<(Vec<&str>, usize, usize)> = fixture
        .iter()
        .map(|r| {
            (
                parse_path(&r["path"]),
                r["total_conversions"].parse().expect("n"),
                r["total_null"].parse().expect("n"),
            )
        })
        .collect();
    let (touches, conversions) = synthetic(&paths);
    for row in read_csv("mta_mit/journey_data_expected.csv") {
        if !row["options"].contains("normalize=False") {
            continue;
        }
        let model = match row["model"].as_str() {
            "first_touch" => Model::FirstTouch,
            "last_touch" => Model::LastTouch,
            "linear" => Model::Linear,
            "position_based" => Model::PositionBased,
            _ => continue,
        };
        let totals = channel_totals(&attribute(
            &touches,
            &conversions,
            model,
            Duration::days(30),
        ));
        let want: f64 = row["expected_credit"].parse().expect("credit");
        let got = totals.get(&row["channel"]).copied().unwrap_or(0.0);
        assert!(
            (got - want).abs() < 1e-9,
            "{} {}: {got} vs {want}",
            row["model"],
            row["channel"]
        );
    }
}

#[test]
fn mta_mit_small_cases_for_the_models_offered() {
    for row in read_csv("mta_mit/small_cases_expected.csv") {
        let model = match (row["model"].as_str(), row["options"].as_str()) {
            ("linear", _) => Model::Linear,
            ("position_based", "first=40,last=40") => Model::PositionBased,
            ("first_touch", _) => Model::FirstTouch,
            ("last_touch", _) => Model::LastTouch,
            _ => continue, // 30/70 weights, Shapley, Shao and the raw transition matrix are not models here
        };
        let paths: Vec<(Vec<&str>, usize, usize)> = row["path"]
            .split('|')
            .zip(row["total_conversions"].split('|'))
            .zip(row["total_null"].split('|'))
            .map(|((path, conversions), nulls)| {
                (
                    parse_path(path),
                    conversions.parse().expect("n"),
                    nulls.parse().expect("n"),
                )
            })
            .collect();
        let (touches, conversions) = synthetic(&paths);
        let totals = channel_totals(&attribute(
            &touches,
            &conversions,
            model,
            Duration::days(30),
        ));
        for pair in row["expected"].split(';') {
            let (channel, value) = pair.split_once('=').expect("channel=value");
            let want: f64 = value.parse().expect("value");
            let got = totals.get(channel).copied().unwrap_or(0.0);
            assert!(
                (got - want).abs() < 1e-9,
                "{} {}: {channel} {got} vs {want}",
                row["case"],
                row["model"]
            );
        }
    }
}

fn fraction(text: &str) -> f64 {
    match text.split_once('/') {
        Some((a, b)) => a.parse::<f64>().expect("num") / b.parse::<f64>().expect("den"),
        None => text.parse().expect("number"),
    }
}

#[test]
fn markov_removal_effects_are_exact() {
    let paths = vec![
        PathCount {
            channels: vec!["a".into(), "b".into()],
            conversions: 3.0,
            nulls: 1.0,
        },
        PathCount {
            channels: vec!["a".into(), "c".into()],
            conversions: 1.0,
            nulls: 1.0,
        },
    ];
    let effects = removal_effects(paths.clone());
    let weights = channel_weights(paths);
    for row in read_csv("mta_mit/markov_fixture_analytic.csv") {
        let channel = &row["channel"];
        assert!(
            (effects[channel] - fraction(&row["removal_effect_relative"])).abs() < 1e-12,
            "{channel} removal effect"
        );
        assert!(
            (weights[channel] - fraction(&row["share"])).abs() < 1e-12,
            "{channel} share"
        );
        assert!(
            (weights[channel] * 4.0 - fraction(&row["attributed_conversions"])).abs() < 1e-12,
            "{channel} conversions"
        );
    }
}

#[test]
fn dp6_paths_match_per_position_credits_and_markov_shares() {
    let rows = read_csv("dp6_apache/test_mam_paths_derived_expected.csv");
    let paths: Vec<PathCount> = rows
        .iter()
        .map(|r| PathCount {
            channels: parse_path(&r["channels_agg"])
                .iter()
                .map(|s| s.to_string())
                .collect(),
            conversions: 1.0,
            nulls: 0.0,
        })
        .collect();
    let weights = channel_weights(paths);
    for (channel, share) in [("A", 0.394191), ("B", 0.315353), ("C", 0.290456)] {
        assert!(
            (weights[channel] - share).abs() < 5e-7,
            "{channel}: {} vs {share}",
            weights[channel]
        );
    }
    for (column, model) in [
        ("first_click", Model::FirstTouch),
        ("last_click", Model::LastTouch),
        ("linear", Model::Linear),
        ("position_based_0.4_0.2_0.4", Model::PositionBased),
    ] {
        for row in &rows {
            let channels = parse_path(&row["channels_agg"]);
            let (touches, conversions) = synthetic(&[(channels.clone(), 1, 0)]);
            let credits = attribute(&touches, &conversions, model, Duration::days(30));
            let value: f64 = row["conversion_value"].parse().expect("value");
            let want: Vec<f64> = row[column]
                .split('>')
                .map(|v| v.trim().parse().expect("credit"))
                .collect();
            let got: Vec<f64> = credits.iter().map(|c| c.credit * value).collect();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-9,
                    "{column} {}: {got:?} vs {want:?}",
                    row["channels_agg"]
                );
            }
        }
    }
}

/// A small deterministic generator for property tests.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

#[test]
fn credits_are_non_negative_sum_to_one_and_ignore_input_order() {
    let channels = ["direct", "email", "paid_search", "social", "referral"];
    let mut rng = Lcg(42);
    for round in 0..60 {
        let base = instant("2024-01-01T00:00:00Z");
        let mut touches = Vec::new();
        let mut conversions = Vec::new();
        for entity in 0..(1 + rng.next(6)) {
            for _ in 0..rng.next(12) {
                let id = format!("r{round}e{entity}t{}", rng.next(9));
                touches.push(Touch {
                    id: id.clone(),
                    entity: format!("e{entity}"),
                    ts: base + Duration::hours(rng.next(24 * 60) as i64),
                    channel: channels[rng.next(5) as usize].to_string(),
                    campaign: None,
                });
            }
            for c in 0..rng.next(4) {
                conversions.push(Conversion {
                    id: format!("r{round}e{entity}c{c}"),
                    entity: format!("e{entity}"),
                    ts: base + Duration::hours(rng.next(24 * 70) as i64),
                    revenue_cents: if rng.next(3) == 0 {
                        None
                    } else {
                        Some(rng.next(1_000_000) as i64)
                    },
                    kind: None,
                });
            }
        }
        // Re-landed touches must be identical rows to count once; make ids unique per content.
        let mut seen = BTreeMap::new();
        touches.retain(|t| seen.insert(t.id.clone(), ()).is_none());
        for model in Model::all(Duration::days(7)) {
            let credits = attribute(&touches, &conversions, model, Duration::days(30));
            for conversion in &conversions {
                let rows: Vec<&Credit> = credits
                    .iter()
                    .filter(|c| c.conversion_id == conversion.id)
                    .collect();
                assert!(
                    rows.iter().all(|c| c.credit >= 0.0),
                    "{} non-negative",
                    model.name()
                );
                let total: f64 = rows.iter().map(|c| c.credit).sum();
                assert!(
                    (total - 1.0).abs() < 1e-9,
                    "{} sums to {total}",
                    model.name()
                );
                if let Some(revenue) = conversion.revenue_cents {
                    assert_eq!(
                        rows.iter()
                            .map(|c| c.revenue_cents.unwrap_or(0))
                            .sum::<i64>(),
                        revenue,
                        "{} revenue",
                        model.name()
                    );
                }
            }
            let mut shuffled_touches = touches.clone();
            let mut shuffled_conversions = conversions.clone();
            shuffled_touches.reverse();
            shuffled_conversions.rotate_left(conversions.len() / 2);
            let again = attribute(
                &shuffled_touches,
                &shuffled_conversions,
                model,
                Duration::days(30),
            );
            assert_eq!(
                credits,
                again,
                "{}: input order changed the credits",
                model.name()
            );
        }
    }
}

#[test]
fn cents_allocation_rules() {
    assert_eq!(allocate_cents(999, &[0.5, 0.5]), vec![499, 500]);
    assert_eq!(allocate_cents(100, &[1.0 / 3.0; 3]), vec![33, 33, 34]);
    assert_eq!(allocate_cents(200, &[1.0 / 3.0; 3]), vec![66, 67, 67]);
    assert_eq!(allocate_cents(0, &[0.2, 0.8]), vec![0, 0]);
    assert_eq!(allocate_cents(7, &[1.0]), vec![7]);
    // Refunds: negative amounts floor towards minus infinity, and still add up.
    assert_eq!(allocate_cents(-999, &[0.5, 0.5]), vec![-500, -499]);
    assert_eq!(
        allocate_cents(-100, &[1.0 / 3.0; 3]).iter().sum::<i64>(),
        -100
    );
}

/// `kpi attribution` in memory and sorted on disk write the same bytes, and every credit of
/// every model equals [`attribute`]'s on random inputs: entities without conversions,
/// conversions without touches, re-landed identical touches, ties in time, missing campaigns
/// and revenues.
#[tokio::test]
async fn the_in_memory_run_and_the_sorted_run_equal_the_reference() {
    let channels = ["direct", "email", "paid_search", "social", "referral"];
    let mut rng = Lcg(7);
    let folder = tempfile::TempDir::new().expect("dir");
    for round in 0..12 {
        let base = instant("2024-01-01T00:00:00Z");
        let mut touches = Vec::new();
        let mut conversions = Vec::new();
        for entity in 0..(1 + rng.next(40)) {
            for t in 0..rng.next(14) {
                // Hours on a coarse grid so that different touches often share an instant.
                touches.push(Touch {
                    id: format!("t{entity}_{t}"),
                    entity: format!("u{}", entity * 7 % 41),
                    ts: base + Duration::hours(6 * rng.next(4 * 60) as i64),
                    channel: channels[rng.next(5) as usize].to_string(),
                    campaign: (rng.next(3) > 0).then(|| format!("camp{}", rng.next(4))),
                });
            }
            for c in 0..rng.next(4) {
                conversions.push(Conversion {
                    id: format!("c{entity}_{c}"),
                    entity: format!("u{}", entity * 7 % 41),
                    ts: base + Duration::hours(6 * rng.next(4 * 70) as i64),
                    revenue_cents: (rng.next(3) > 0).then(|| rng.next(1_000_000) as i64),
                    kind: None,
                });
            }
        }
        // Re-landed touches: the same row again.
        for index in 0..touches.len() / 5 {
            let again = touches[index * 3 % touches.len()].clone();
            touches.push(again);
        }
        let touches_csv = folder.path().join(format!("touches{round}.csv"));
        let conversions_csv = folder.path().join(format!("conversions{round}.csv"));
        let mut text = String::from("touch_id,user_id,ts,channel,campaign\n");
        for t in &touches {
            let campaign = t.campaign.clone().unwrap_or_default();
            let ts = t.ts.to_rfc3339();
            text += &format!("{},{},{ts},{},{campaign}\n", t.id, t.entity, t.channel);
        }
        std::fs::write(&touches_csv, text).expect("write");
        let mut text = String::from("conversion_id,user_id,ts,revenue\n");
        for c in &conversions {
            let revenue = c
                .revenue_cents
                .map(|cents| format!("{}.{:02}", cents / 100, cents % 100))
                .unwrap_or_default();
            text += &format!("{},{},{},{revenue}\n", c.id, c.entity, c.ts.to_rfc3339());
        }
        std::fs::write(&conversions_csv, text).expect("write");

        let models = Model::all(Duration::days(7));
        let columns = io::Columns::parse(&[]).expect("columns");
        let run = |budget: usize, name: &str| {
            let out = folder.path().join(format!("{name}{round}.csv"));
            let touches_csv = touches_csv.clone();
            let conversions_csv = conversions_csv.clone();
            let models = models.clone();
            let columns = &columns;
            async move {
                let job = stream::Job {
                    touches: &touches_csv,
                    conversions: &conversions_csv,
                    columns,
                    models: &models,
                    lookback: Duration::days(30),
                    out: &out,
                    memory_budget: budget,
                };
                let summary = stream::run(&job).await.expect("run");
                assert_eq!(summary.sorted_on_disk, budget == 0);
                std::fs::read_to_string(&out).expect("output")
            }
        };
        let in_memory = run(usize::MAX, "memory").await;
        let sorted = run(0, "sorted").await;
        assert_eq!(in_memory, sorted, "round {round}");

        let mut lines = in_memory.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        for model in &models {
            let credit = header
                .iter()
                .position(|h| *h == format!("credit_{}", model.name()))
                .expect("credit column");
            // (conversion id, position, channel, credit, revenue credit)
            type Row = (String, Option<usize>, String, f64, Option<i64>);
            let mut ours: Vec<Row> = rows
                .iter()
                .map(|cells| {
                    (
                        cells[0].to_string(),
                        cells[2].parse().ok(),
                        cells[3].to_string(),
                        cells[credit].parse().expect("credit"),
                        cents(cells[credit + 1]),
                    )
                })
                .collect();
            ours.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            let reference = attribute(&touches, &conversions, *model, Duration::days(30));
            assert_eq!(
                ours.len(),
                reference.len(),
                "round {round} {}",
                model.name()
            );
            for (got, want) in ours.iter().zip(&reference) {
                assert_eq!(
                    (&got.0, got.1, &got.2, got.4),
                    (
                        &want.conversion_id,
                        want.position,
                        &want.channel,
                        want.revenue_cents
                    ),
                    "round {round} {}",
                    model.name()
                );
                assert!(
                    (got.3 - want.credit).abs() < 1e-12,
                    "round {round} {}: {got:?} vs {want:?}",
                    model.name()
                );
            }
        }
    }
}
