//! The attribution table through the metric layer: attributed totals reconcile with the
//! unattributed metrics under every model, and credits equal DuckDB's window-function SQL
//! over the raw Parquet.

use std::collections::BTreeMap;

use crate::support::*;

/// A week of the demo data with conversions of every type.
const WEEK: &str = "2026-W44";
/// Its first local day.
const WEEK_START: &str = "2026-10-26";
const MODELS: [&str; 7] = [
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "position_based",
    "time_decay",
    "markov",
];

/// Sums a one-week series over its dimension values (and counts the values).
fn total(series: &serde_json::Value) -> (f64, usize) {
    let points = series["points"].as_array().expect("points");
    let sum = points.iter().filter_map(|p| p["value"].as_f64()).sum();
    (sum, points.len())
}

fn cents(value: f64) -> i64 {
    (value * 100.0).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributed_totals_equal_the_unattributed_metrics_under_every_model() {
    let server = TestServer::start(&repo(), demo_data().to_str().expect("utf-8"), "", &[]).await;
    let week = format!("from={WEEK}&to={WEEK}");
    let value = |series: serde_json::Value| series["points"][0]["value"].as_f64().expect("value");
    let mqls = value(
        server
            .get_json(&format!("/api/v1/metrics/mqls?{week}"))
            .await,
    );
    let pipeline = value(
        server
            .get_json(&format!("/api/v1/metrics/pipeline_created?{week}"))
            .await,
    );
    let won = value(
        server
            .get_json(&format!("/api/v1/metrics/closed_won_revenue?{week}"))
            .await,
    );
    assert!(
        mqls > 0.0 && pipeline > 0.0 && won > 0.0,
        "the week has conversions"
    );

    let mut pipeline_by_model: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    for model in MODELS {
        for lookback in ["30d", "7d"] {
            let ask = |metric: &str| {
                format!(
                    "/api/v1/metrics/{metric}?{week}&by=channel&model={model}&lookback={lookback}"
                )
            };
            let series = server.get_json(&ask("attributed_mqls")).await;
            assert_eq!(series["attribution"]["model"], model);
            assert_eq!(series["attribution"]["lookback"], lookback);
            let (sum, channels) = total(&series);
            assert!(channels >= 2, "{model}: credit spread over channels");
            assert!(
                (sum - mqls).abs() < 1e-6,
                "{model} {lookback}: attributed MQLs {sum} vs MQLs {mqls}"
            );
            let series = server.get_json(&ask("attributed_pipeline")).await;
            assert_eq!(
                cents(total(&series).0),
                cents(pipeline),
                "{model} {lookback}: attributed pipeline vs pipeline created"
            );
            if lookback == "30d" {
                let by_channel = series["points"]
                    .as_array()
                    .expect("points")
                    .iter()
                    .map(|p| {
                        (
                            p["dimensions"]["channel"]
                                .as_str()
                                .unwrap_or("")
                                .to_string(),
                            p["value"].as_f64().unwrap_or(0.0),
                        )
                    })
                    .collect();
                pipeline_by_model.insert(model, by_channel);
            }
            let series = server.get_json(&ask("attributed_revenue")).await;
            assert_eq!(
                cents(total(&series).0),
                cents(won),
                "{model} {lookback}: attributed revenue vs closed-won revenue"
            );
        }
    }
    // The models disagree about channels (or the test data could not tell them apart).
    assert_ne!(
        pipeline_by_model["first_touch"],
        pipeline_by_model["last_touch"]
    );
    assert_ne!(pipeline_by_model["linear"], pipeline_by_model["markov"]);

    // The project default (kpi.toml: linear, 30d) is what a query without parameters gets.
    let default = server
        .get_json(&format!(
            "/api/v1/metrics/attributed_pipeline?{week}&by=channel"
        ))
        .await;
    assert_eq!(default["attribution"]["label"], "linear, 30d lookback");

    // Mistakes are named.
    for (query, code) in [
        ("attributed_mqls?model=best", "bad_attribution"),
        ("attributed_mqls?lookback=30", "bad_attribution"),
        ("mqls?model=linear", "not_attributed"),
    ] {
        let response = server
            .client
            .get(format!("{}/api/v1/metrics/{query}", server.base))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }

    // SQL users get the same credits, under any model, from the table function.
    let (status, body) = server
        .sql(&format!(
            "SELECT sum(revenue_credit) AS total FROM attribution('markov', '30d') \
             WHERE conversion_type = 'opportunity_created' \
             AND converted_at >= TIMESTAMP '{WEEK_START}T04:00:00Z' AND converted_at < TIMESTAMP '2026-11-02T05:00:00Z'"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let total_sql: f64 = body["rows"][0]["total"]
        .as_str()
        .map(|t| t.parse().expect("decimal"))
        .or_else(|| body["rows"][0]["total"].as_f64())
        .expect("a total");
    assert_eq!(cents(total_sql), cents(pipeline));
}

/// DuckDB's paths: each conversion of the week joined to its contact's distinct sessions in
/// the exact window, numbered in `(started_at, session_id)` order.
fn duckdb_paths(conversions: &str) -> String {
    let data = demo_data();
    let t = |table: &str| duckdb_table(data, table);
    let local = |column: &str| format!("CAST(timezone('America/New_York', {column}) AS DATE)");
    format!(
        "WITH contacts AS (SELECT DISTINCT contact_id FROM {contacts}), \
         s AS (SELECT DISTINCT session_id, contact_id, started_at, channel FROM {sessions} WHERE contact_id IS NOT NULL), \
         conv AS ({conversions}), \
         week AS (SELECT * FROM conv WHERE {local_ts} >= DATE '{WEEK_START}' AND {local_ts} < DATE '{WEEK_START}' + 7), \
         paths AS (SELECT c.*, s.session_id, s.channel, \
             row_number() OVER (PARTITION BY c.id ORDER BY s.started_at, s.session_id) AS pos, \
             count(s.session_id) OVER (PARTITION BY c.id) AS n \
           FROM week c LEFT JOIN s ON s.contact_id = c.contact_id \
             AND s.started_at >= c.ts - INTERVAL 720 HOUR AND s.started_at <= c.ts) ",
        contacts = t("crm.contacts"),
        sessions = t("analytics.sessions"),
        local_ts = local("ts"),
    )
}

#[test]
fn attributed_metrics_equal_duckdb_window_functions_over_the_raw_files() {
    let data = demo_data();
    let t = |table: &str| duckdb_table(data, table);
    let mqls = format!(
        "SELECT DISTINCT l.contact_id || CAST(l.changed_at AS VARCHAR) AS id, l.contact_id, l.changed_at AS ts \
         FROM {} l JOIN contacts USING (contact_id) WHERE l.to_stage = 'mql'",
        t("crm.lifecycle_changes")
    );
    let opportunities = format!(
        "SELECT o.opportunity_id AS id, o.contact_id, o.created_at AS ts, o.amount \
         FROM {} o JOIN contacts USING (contact_id)",
        t("crm.opportunities")
    );
    let unattributed = "coalesce(channel, '(unattributed)')";
    let queries = vec![
        // linear MQLs: 1/n per touch, 1 to (unattributed) when the window is empty
        format!(
            "{} SELECT {unattributed}, sum(CASE WHEN n = 0 THEN 1.0 ELSE 1.0 / n END) FROM paths GROUP BY 1",
            duckdb_paths(&mqls)
        ),
        // first-touch pipeline: the whole amount to the first touch
        format!(
            "{} SELECT {unattributed}, sum(amount) FROM paths WHERE pos = 1 OR n = 0 GROUP BY 1",
            duckdb_paths(&opportunities)
        ),
        // last-touch pipeline
        format!(
            "{} SELECT {unattributed}, sum(amount) FROM paths WHERE pos = n OR n = 0 GROUP BY 1",
            duckdb_paths(&opportunities)
        ),
    ];
    let expected = duckdb_many(&queries);
    for ((metric, model, exact_cents), rows) in [
        ("attributed_mqls", "linear", false),
        ("attributed_pipeline", "first_touch", true),
        ("attributed_pipeline", "last_touch", true),
    ]
    .into_iter()
    .zip(expected)
    {
        let ours = kpi_week_by_channel(metric, model);
        let theirs: BTreeMap<String, f64> = rows
            .into_iter()
            .map(|(channel, value)| (channel, value.unwrap_or(0.0)))
            .collect();
        assert!(
            theirs.len() >= 2,
            "{metric} {model}: DuckDB found channels: {theirs:?}"
        );
        for (channel, value) in &ours {
            let expected = theirs.get(channel).copied().unwrap_or(0.0);
            if exact_cents {
                assert_eq!(cents(*value), cents(expected), "{metric} {model} {channel}");
            } else {
                assert!(
                    (value - expected).abs() < 1e-9,
                    "{metric} {model} {channel}: kpi {value} vs DuckDB {expected}"
                );
            }
        }
        for channel in theirs.keys() {
            assert!(
                ours.contains_key(channel),
                "{metric} {model}: kpi lacks {channel}"
            );
        }
    }
}

/// `kpi metric METRIC --by channel --model MODEL` for the week, through the CLI.
fn kpi_week_by_channel(metric: &str, model: &str) -> BTreeMap<String, f64> {
    let project = repo();
    let output = kpi(
        &[
            "metric",
            metric,
            "--project",
            project.to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
            "--from",
            WEEK,
            "--to",
            WEEK,
            "--by",
            "channel",
            "--model",
            model,
            "--format",
            "json",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let series: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    series["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| {
            (
                p["dimensions"]["channel"]
                    .as_str()
                    .expect("channel")
                    .to_string(),
                p["value"].as_f64().expect("value"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attribution_page_documents_every_rule_and_its_numbers_equal_the_api() {
    let server = TestServer::start(&repo(), demo_data().to_str().expect("utf-8"), "", &[]).await;
    let response = server
        .client
        .get(format!("{}/attribution?week={WEEK}", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let html = response.text().await.expect("html");
    for anchor in [
        "window",
        "order",
        "duplicates",
        "repeated",
        "unattributed",
        "money",
        "models",
        "markov",
        "example",
        "demo",
    ] {
        assert!(
            html.contains(&format!("id=\"{anchor}\"")),
            "section {anchor}"
        );
    }
    assert!(html.contains("<strong>not</strong> Google's proprietary data-driven"));
    assert!(
        html.contains("linear, 30d lookback"),
        "the project default is named"
    );

    // The worked example is the fixture, credited live: its cells are the expected credits.
    let fixture = std::fs::read_to_string(
        repo().join("../shared/fixtures/attribution/edge_cases/expected_credits.csv"),
    )
    .expect("fixture");
    let example_start = html.find("id=\"example\"").expect("example");
    let example_end = html.find("id=\"demo\"").expect("demo");
    let example = &html[example_start..example_end];
    let credits: Vec<f64> = elements_with(example, "data-credit")
        .iter()
        .map(|a| a["data-credit"].parse().expect("number"))
        .collect();
    let mut expected_cells = 0;
    for line in fixture.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        for field in &fields[6..12] {
            let expected: f64 = field.parse().expect("fraction");
            assert!(
                credits.iter().any(|c| (c - expected).abs() < 1e-9),
                "expected credit {expected} ({line}) is on the page"
            );
            expected_cells += 1;
        }
    }
    assert!(expected_cells >= 90 && credits.len() >= expected_cells);

    // The side-by-side table: every number equals the metric API's for that model and channel,
    // and every model's total is pipeline created.
    let cells = elements_with(&html, "data-model");
    assert_eq!(cells.len() % MODELS.len(), 0);
    assert!(cells.len() >= MODELS.len() * 4, "channels × models");
    let pipeline = server
        .get_json(&format!(
            "/api/v1/metrics/pipeline_created?from={WEEK}&to={WEEK}"
        ))
        .await["points"][0]["value"]
        .as_f64()
        .expect("pipeline");
    for model in MODELS {
        let series = server
            .get_json(&format!(
                "/api/v1/metrics/attributed_pipeline?from={WEEK}&to={WEEK}&by=channel&model={model}"
            ))
            .await;
        let api: BTreeMap<String, f64> = series["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| {
                (
                    p["dimensions"]["channel"]
                        .as_str()
                        .expect("channel")
                        .to_string(),
                    p["value"].as_f64().expect("value"),
                )
            })
            .collect();
        for cell in cells.iter().filter(|c| c["data-model"] == model) {
            assert_eq!(cell["data-metric"], "attributed_pipeline");
            assert_eq!(cell["data-period"], WEEK);
            let value: f64 = cell["data-value"].parse().expect("value");
            let expected = match cell["data-channel"].as_str() {
                "(all)" => pipeline,
                channel => api.get(channel).copied().unwrap_or(0.0),
            };
            assert_eq!(
                cents(value),
                cents(expected),
                "{model} {}",
                cell["data-channel"]
            );
        }
    }
}
