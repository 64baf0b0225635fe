//! Every demo metric against values DuckDB computes independently from the raw Parquet files:
//! its own de-duplication, its own time-zone conversion (ICU) and its own ISO weeks.

use std::collections::BTreeMap;

use crate::support::*;

/// Weeks checked: a normal one, the turn of the year, and both 2026 DST changes.
const WEEKS: [(&str, &str); 4] = [
    ("2026-W01", "2025-12-29"),
    ("2026-W10", "2026-03-02"),
    ("2026-W20", "2026-05-11"),
    ("2026-W44", "2026-10-26"),
];

/// DuckDB SQL, per metric, giving `value` for the local week starting on `{week}` (a DATE).
fn duckdb_metric(name: &str, by: Option<&str>) -> String {
    let data = demo_data();
    let t = |table: &str| duckdb_table(data, table);
    let local = |column: &str| format!("CAST(timezone('America/New_York', {column}) AS DATE)");
    let in_week = |column: &str| {
        format!(
            "{} >= {{week}} AND {} < {{week}} + 7",
            local(column),
            local(column)
        )
    };
    let group = by.map(|d| format!("{d}, ")).unwrap_or_default();
    let group_by = by.map(|d| format!(" GROUP BY {d}")).unwrap_or_default();
    let ads = format!(
        "(SELECT DISTINCT * EXCLUDE (month) FROM {})",
        t("ads.campaign_daily")
    );
    let sessions = format!("(SELECT DISTINCT * FROM {})", t("analytics.sessions"));
    let lifecycle = format!(
        "(SELECT l.*, c.region, c.industry, c.company_size, c.lead_source FROM {} l JOIN {} c USING (contact_id))",
        t("crm.lifecycle_changes"),
        t("crm.contacts")
    );
    let opportunities = format!(
        "(SELECT o.*, c.region FROM {} o JOIN {} c USING (contact_id))",
        t("crm.opportunities"),
        t("crm.contacts")
    );
    let ads_sum = |column: &str| {
        format!("SELECT {group}sum({column}) AS value FROM {ads} WHERE date >= {{week}} AND date < {{week}} + 7{group_by}")
    };
    let count_stage = |stage: &str| {
        format!("SELECT {group}count(DISTINCT contact_id) AS value FROM {lifecycle} WHERE to_stage = '{stage}' AND {}{group_by}", in_week("changed_at"))
    };
    let sends = |extra: &str| {
        format!("SELECT {group}count(DISTINCT send_id) AS value FROM {} WHERE delivered{extra} AND {}{group_by}", t("email.sends"), in_week("sent_at"))
    };
    let submits = format!(
        "SELECT {group}count(DISTINCT e.event_id) AS value FROM {} e JOIN {sessions} s USING (session_id) WHERE e.name = 'form_submit' AND {}{group_by}",
        t("analytics.events"),
        in_week("e.occurred_at")
    );
    let session_count = format!(
        "SELECT {group}count(DISTINCT session_id) AS value FROM {sessions} WHERE {}{group_by}",
        in_week("started_at")
    );
    let ratio = |a: &str, b: &str| match by {
        Some(d) => format!(
            "SELECT a.{d}, a.value / b.value AS value FROM ({a}) a JOIN ({b}) b USING ({d})"
        ),
        None => format!("SELECT a.value / b.value AS value FROM ({a}) a, ({b}) b"),
    };
    match name {
        "spend" => ads_sum("spend"),
        "impressions" => ads_sum("impressions"),
        "clicks" => ads_sum("clicks"),
        "ctr" => ratio(&ads_sum("clicks"), &ads_sum("impressions")),
        "sessions" => session_count,
        "form_submits" => submits,
        "session_conversion_rate" => ratio(&submits, &session_count),
        "new_contacts" => format!("SELECT count(DISTINCT contact_id) AS value FROM {} WHERE {}", t("crm.contacts"), in_week("created_at")),
        "mqls" => count_stage("mql"),
        "sqls" => count_stage("sql"),
        "mql_to_sql_30d" => format!(
            "WITH first_mql AS (SELECT contact_id, min(changed_at) AS at FROM {lifecycle} WHERE to_stage = 'mql' GROUP BY 1) \
             SELECT avg(CASE WHEN EXISTS (SELECT 1 FROM {lifecycle} s WHERE s.contact_id = f.contact_id AND s.to_stage = 'sql' \
             AND s.changed_at >= f.at AND s.changed_at <= f.at + INTERVAL 30 DAY) THEN 1.0 ELSE 0.0 END) AS value \
             FROM first_mql f WHERE {}",
            in_week("f.at")
        ),
        "pipeline_created" => format!("SELECT {group}sum(amount) AS value FROM {opportunities} WHERE {}{group_by}", in_week("created_at")),
        "closed_won_revenue" => format!("SELECT sum(amount) AS value FROM {opportunities} WHERE status = 'won' AND {}", in_week("closed_at")),
        "pipeline_created_qtd" => format!(
            "SELECT sum(amount) AS value FROM {opportunities} WHERE {c} >= date_trunc('quarter', {{week}} + 6) AND {c} < {{week}} + 7",
            c = local("created_at")
        ),
        "cost_per_mql" => ratio(&ads_sum("spend"), &count_stage("mql")),
        "emails_delivered" => sends(""),
        "emails_clicked" => sends(" AND clicked_at IS NOT NULL"),
        "email_click_rate" => ratio(&sends(" AND clicked_at IS NOT NULL"), &sends("")),
        other => panic!("no DuckDB reference for metric `{other}`; add one here"),
    }
}

/// Runs the kpi metric CLI over the checked range and returns (period, dimension) → value.
fn kpi_series(name: &str, by: Option<&str>) -> BTreeMap<(String, String), Option<f64>> {
    let data = demo_data().to_str().expect("utf-8").to_string();
    let project = repo();
    let mut args = vec![
        "metric",
        name,
        "--project",
        project.to_str().expect("utf-8"),
        "--data",
        &data,
        "--from",
        "2026-W01",
        "--to",
        "2026-W44",
        "--format",
        "json",
    ];
    if let Some(by) = by {
        args.extend(["--by", by]);
    }
    let output = kpi(&args, &[]);
    assert!(
        output.status.success(),
        "kpi metric {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let series: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut values = BTreeMap::new();
    for point in series["points"].as_array().expect("points") {
        let dimension = by
            .map(|d| point["dimensions"][d].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        values.insert(
            (
                point["period"].as_str().expect("period").to_string(),
                dimension,
            ),
            point["value"].as_f64(),
        );
    }
    values
}

fn assert_close(metric: &str, unit: &str, context: &str, ours: Option<f64>, theirs: Option<f64>) {
    match (ours, theirs) {
        (Some(a), Some(b)) => {
            let ok = match unit {
                "count" => a == b,
                "currency" => (a * 100.0).round() == (b * 100.0).round(),
                _ => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            };
            assert!(ok, "{metric} {context}: kpi {a} vs DuckDB {b}");
        }
        (None, None) => {}
        // DuckDB's SUM over no rows is NULL, like ours; COUNT over no rows is 0 where we say null.
        (None, Some(0.0)) => {}
        _ => panic!("{metric} {context}: kpi {ours:?} vs DuckDB {theirs:?}"),
    }
}

#[test]
fn every_demo_metric_matches_duckdb_on_four_weeks() {
    let catalog = kpi_query_json(
        &repo(),
        demo_data().to_str().expect("utf-8"),
        "SELECT 1 AS one",
        &[],
    );
    assert_eq!(catalog[0]["one"], 1);
    let units: BTreeMap<&str, &str> = [
        ("spend", "currency"),
        ("impressions", "count"),
        ("clicks", "count"),
        ("ctr", "percent"),
        ("sessions", "count"),
        ("form_submits", "count"),
        ("session_conversion_rate", "percent"),
        ("new_contacts", "count"),
        ("mqls", "count"),
        ("sqls", "count"),
        ("mql_to_sql_30d", "percent"),
        ("pipeline_created", "currency"),
        ("closed_won_revenue", "currency"),
        ("pipeline_created_qtd", "currency"),
        ("cost_per_mql", "currency"),
        ("emails_delivered", "count"),
        ("emails_clicked", "count"),
        ("email_click_rate", "percent"),
    ]
    .into_iter()
    .collect();
    let cases: Vec<(&str, Option<&str>)> = units
        .keys()
        .map(|name| (*name, None))
        .chain([
            ("spend", Some("platform")),
            ("sessions", Some("channel")),
            ("mqls", Some("region")),
            ("pipeline_created", Some("region")),
            ("ctr", Some("platform")),
            ("session_conversion_rate", Some("channel")),
        ])
        .collect();
    let mut queries = Vec::new();
    for (name, by) in &cases {
        for (_, start) in WEEKS {
            queries.push(duckdb_metric(name, *by).replace("{week}", &format!("DATE '{start}'")));
        }
    }
    let expected = duckdb_many(&queries);
    let mut expected = expected.into_iter();
    let mut checked = 0;
    for (name, by) in &cases {
        let ours = kpi_series(name, *by);
        for (week, _) in WEEKS {
            let rows = expected.next().expect("a DuckDB answer per query");
            assert!(
                !rows.is_empty() || by.is_some(),
                "{name} {week}: DuckDB returned nothing"
            );
            for (dimension, value) in rows {
                let got = ours
                    .get(&(week.to_string(), dimension.clone()))
                    .copied()
                    .flatten();
                assert_close(
                    name,
                    units[name],
                    &format!("{week} {dimension}"),
                    got,
                    value,
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} values compared");
}

#[test]
fn comparisons_and_errors_through_the_cli() {
    let data = demo_data().to_str().expect("utf-8").to_string();
    let project = repo();
    let project = project.to_str().expect("utf-8");
    let output = kpi(
        &[
            "metric",
            "mqls",
            "--project",
            project,
            "--data",
            &data,
            "--from",
            "2026-W40",
            "--to",
            "2026-W44",
            "--compare",
            "previous,year_ago,trailing_4",
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
    let points = series["points"].as_array().expect("points");
    assert_eq!(points.len(), 5);
    let value = |label: &str| {
        points
            .iter()
            .find(|p| p["period"] == label)
            .map(|p| p["value"].as_f64())
    };
    let w44 = points
        .iter()
        .find(|p| p["period"] == "2026-W44")
        .expect("w44");
    assert_eq!(w44["comparisons"]["previous"]["period"], "2026-W43");
    assert_eq!(
        w44["comparisons"]["previous"]["value"].as_f64(),
        value("2026-W43").flatten()
    );
    assert_eq!(w44["comparisons"]["year_ago"]["period"], "2025-W44");
    assert_eq!(
        w44["comparisons"]["trailing_4"]["period"],
        "2026-W40..2026-W43"
    );
    let trailing: f64 = ["2026-W40", "2026-W41", "2026-W42", "2026-W43"]
        .iter()
        .map(|w| value(w).flatten().expect("value"))
        .sum::<f64>()
        / 4.0;
    assert!(
        (w44["comparisons"]["trailing_4"]["value"]
            .as_f64()
            .expect("mean")
            - trailing)
            .abs()
            < 1e-9
    );
    let change = w44["value"].as_f64().expect("v") - value("2026-W43").flatten().expect("v");
    assert!(
        (w44["comparisons"]["previous"]["change"]
            .as_f64()
            .expect("change")
            - change)
            .abs()
            < 1e-9
    );
    assert_eq!(series["sources"], serde_json::json!(["crm"]));
    assert_eq!(w44["target"], 110.0);

    let derived = kpi(
        &[
            "metric",
            "cost_per_mql",
            "--project",
            project,
            "--data",
            &data,
            "--from",
            "2026-W44",
            "--to",
            "2026-W44",
            "--format",
            "json",
        ],
        &[],
    );
    let derived: serde_json::Value = serde_json::from_slice(&derived.stdout).expect("json");
    assert_eq!(derived["sources"], serde_json::json!(["ads", "crm"]));

    for (args, code, text) in [
        (
            vec!["metric", "nope", "--from", "2026-W01", "--to", "2026-W02"],
            2,
            "no metric named `nope`",
        ),
        (
            vec!["metric", "mqls", "--from", "2026-W99", "--to", "2026-W02"],
            2,
            "2026 has 53 weeks",
        ),
        (
            vec![
                "metric", "mqls", "--from", "2026-W01", "--to", "2026-W02", "--by", "platform",
            ],
            2,
            "cannot be sliced by `platform`",
        ),
    ] {
        let mut full = args.clone();
        full.extend(["--project", project, "--data", &data]);
        let output = kpi(&full, &[]);
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(text),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_api_catalog_and_errors_over_http() {
    let server = TestServer::start(&repo(), demo_data().to_str().expect("utf-8"), "", &[]).await;
    let catalog = server.get_json("/api/v1/metrics").await;
    let metrics = catalog["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), 21);
    let cost = metrics
        .iter()
        .find(|m| m["name"] == "cost_per_mql")
        .expect("cost_per_mql");
    assert_eq!(cost["sources"], serde_json::json!(["ads", "crm"]));
    assert_eq!(cost["dashboards"], serde_json::json!(["weekly-marketing"]));

    let series = server
        .get_json("/api/v1/metrics/spend?from=2026-W43&to=2026-W44&by=platform&compare=previous")
        .await;
    assert_eq!(series["unit"], "currency");
    assert_eq!(series["definition_hash"].as_str().expect("hash").len(), 16);
    let points = series["points"].as_array().expect("points");
    assert_eq!(points.len(), 6, "2 weeks × 3 platforms");
    assert!(points
        .iter()
        .all(|p| p["comparisons"]["previous"]["value"].is_number()));
    let filtered = server
        .get_json("/api/v1/metrics/spend?from=2026-W43&to=2026-W44&filter=platform=google_ads")
        .await;
    let google: f64 = points
        .iter()
        .filter(|p| p["dimensions"]["platform"] == "google_ads" && p["period"] == "2026-W44")
        .map(|p| p["value"].as_f64().expect("v"))
        .sum();
    let filtered_w44 = filtered["points"]
        .as_array()
        .expect("points")
        .iter()
        .find(|p| p["period"] == "2026-W44")
        .expect("w44")["value"]
        .as_f64()
        .expect("v");
    assert!((google - filtered_w44).abs() < 1e-6);

    let csv = server
        .client
        .get(format!(
            "{}/api/v1/metrics/mqls?from=2026-W43&to=2026-W44&compare=previous",
            server.base
        ))
        .header("accept", "text/csv")
        .send()
        .await
        .expect("request");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.expect("text");
    assert!(text.starts_with("period,start,end,value,target,previous_period,previous_value,previous_change,previous_change_ratio\n2026-W43,2026-10-19,2026-10-25,"), "{text}");

    for (path, status, code) in [
        ("/api/v1/metrics/nope", 404, "unknown_metric"),
        ("/api/v1/metrics/mqls?from=2026-W60", 400, "bad_period"),
        (
            "/api/v1/metrics/mqls?from=2026-W01&to=2026-W02&by=platform",
            400,
            "dimension_not_allowed",
        ),
        ("/api/v1/metrics/mqls?grain=fortnight", 400, "bad_grain"),
        (
            "/api/v1/metrics/mqls?compare=yesterday",
            400,
            "bad_comparison",
        ),
    ] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }

    let openapi = server.get_json("/api/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/api/v1/metrics/{name}"]["get"]["responses"]["404"].is_object());

    let page = server
        .client
        .get(format!("{}/definitions/cost_per_mql", server.base))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    for needle in [
        "Cost per MQL",
        "ads + crm",
        "spend / mqls",
        "Weekly marketing",
        "Version history",
        "metrics/efficiency.toml:4",
    ] {
        assert!(html.contains(needle), "catalog page lacks `{needle}`");
    }
    let index = server
        .client
        .get(format!("{}/definitions", server.base))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(index.contains("href=\"/definitions/mql_to_sql_30d\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_answers_without_a_socket() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let text = std::fs::read_to_string(repo().join("kpi.toml")).expect("config");
    let overrides = kpi::config::Overrides {
        data: Some(demo_data().to_str().expect("utf-8").to_string()),
        addr: None,
    };
    let config = std::sync::Arc::new(
        kpi::config::Config::from_parts(&repo(), &text, &|_| None, &overrides).expect("config"),
    );
    let engine = kpi::engine::Engine::try_new(config.clone()).expect("engine");
    let state = kpi::web::AppState::try_new(config, engine)
        .await
        .expect("state");
    let router = kpi::web::router(state);
    for (uri, status) in [
        (
            "/api/v1/metrics/sessions?from=2026-W44&to=2026-W44&by=device",
            200,
        ),
        (
            "/api/v1/metrics/sessions?from=2026-W44&to=2026-W44&by=region",
            400,
        ),
        ("/api/v1/metrics/unknown", 404),
        ("/definitions/unknown", 404),
        ("/definitions/sessions", 200),
    ] {
        let response = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(response.status().as_u16(), status, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_change_is_recorded_and_marks_series_that_span_it() {
    let project = project_copy();
    let server = TestServer::start(
        project.path(),
        demo_data().to_str().expect("utf-8"),
        "reload_interval_ms = 100",
        &[],
    )
    .await;
    let before = server.get_json("/api/v1/metrics").await["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == "mqls")
        .expect("mqls")["definition_hash"]
        .clone();
    // The range that contains "now", when the change is first served.
    let today = chrono::Utc::now().date_naive();
    let week =
        |day: chrono::NaiveDate| format!("{}-W{:02}", day.iso_week().year(), day.iso_week().week());
    use chrono::Datelike;
    let url = format!(
        "/api/v1/metrics/cost_per_mql?from={}&to={}",
        week(today - chrono::Duration::days(7)),
        week(today + chrono::Duration::days(7))
    );
    assert_eq!(
        server.get_json(&url).await["definition_changes"],
        serde_json::json!([])
    );

    let path = project.path().join("metrics/crm.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    let changed = text.replacen(
        "filter = \"to_stage = 'mql'\"",
        "filter = \"to_stage = 'mql' AND contact_id IS NOT NULL\"",
        1,
    );
    assert_ne!(text, changed);
    std::fs::write(&path, changed).expect("write");
    let reloaded = eventually(20, || async {
        let catalog = server.get_json("/api/v1/metrics").await;
        catalog["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["name"] == "mqls")
            .expect("mqls")["definition_hash"]
            != before
    })
    .await;
    assert!(reloaded);
    // cost_per_mql = spend / mqls spans the change of its part.
    let changes = server.get_json(&url).await["definition_changes"].clone();
    assert_eq!(changes.as_array().expect("changes").len(), 1, "{changes}");
    assert_eq!(changes[0]["metric"], "mqls");
    let page = server
        .client
        .get(format!("{}/definitions/mqls", server.base))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains(before.as_str().expect("hash")),
        "old version listed"
    );
    assert!(page.contains("(current)"));
    assert!(project
        .path()
        .join(".kpi/definition-history.jsonl")
        .exists());

    // The report of this week marks the KPIs computed across the change, and says so.
    let report = server
        .client
        .get(format!(
            "{}/reports/sales-pipeline/{}",
            server.base,
            week(today)
        ))
        .send()
        .await
        .expect("report")
        .text()
        .await
        .expect("html");
    let marked: Vec<String> = elements_with(&report, "data-definition-change")
        .iter()
        .map(|a| a["data-definition-change"].clone())
        .collect();
    assert_eq!(marked, vec!["mqls".to_string()], "only the changed KPI");
    assert!(report.contains("weeks before and after are computed differently"));
}
