//! A report whose every sentence can be trusted: maturing cohorts and to-date KPIs judged
//! fairly, and tracking conventions counted exactly (against DuckDB over the same files).

use crate::support::*;

/// The test data ends on 2026-11-15; W44 is 26 October to 1 November.
const WEEK: &str = "2026-W44";

fn report_json(dashboard: &str, week: &str) -> serde_json::Value {
    let out = tempfile::TempDir::new().expect("temp");
    let path = out.path().join("report.json");
    let output = kpi(
        &[
            "report",
            dashboard,
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
            "--week",
            week,
            "--out",
            path.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("json")
}

fn metric_json(name: &str, from: &str, to: &str) -> serde_json::Value {
    let output = kpi(
        &[
            "metric",
            name,
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
            "--from",
            from,
            "--to",
            to,
            "--compare",
            "previous,year_ago",
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
    serde_json::from_slice(&output.stdout).expect("json")
}

fn tile<'r>(report: &'r serde_json::Value, metric: &str) -> &'r serde_json::Value {
    report["primary"]
        .as_array()
        .expect("primary")
        .iter()
        .chain(
            report["sections"]
                .as_array()
                .expect("sections")
                .iter()
                .flat_map(|s| s["tiles"].as_array().expect("tiles").iter()),
        )
        .find(|t| t["metric"] == metric)
        .unwrap_or_else(|| panic!("tile {metric}"))
}

#[test]
fn maturing_cohorts_are_marked_and_never_compared() {
    // A 30-day window with data to 15 November: cohorts up to W41 (ends 11 October) have
    // closed; W42 (ends 18 October) onwards are maturing.
    let series = metric_json("mql_to_sql_30d", "2026-W40", WEEK);
    let points = series["points"].as_array().expect("points");
    let maturing: Vec<(&str, bool)> = points
        .iter()
        .map(|p| (p["period"].as_str().expect("period"), p["maturing"] == true))
        .collect();
    assert_eq!(
        maturing,
        vec![
            ("2026-W40", false),
            ("2026-W41", false),
            ("2026-W42", true),
            ("2026-W43", true),
            ("2026-W44", true)
        ]
    );
    for point in points {
        if point["maturing"] == true {
            assert_eq!(point["comparisons"], serde_json::json!({}), "{point}");
        } else {
            assert!(point["comparisons"]["previous"].is_object(), "{point}");
        }
    }
    assert_eq!(
        points[4]["maturity"],
        serde_json::json!({"days_observed": 14, "days_observed_first": 20, "days_needed": 30})
    );

    let report = report_json("weekly-marketing", WEEK);
    let cohort = tile(&report, "mql_to_sql_30d");
    assert_eq!(cohort["maturing"], true);
    assert_eq!(cohort["comparisons"], serde_json::json!({}));
    assert_eq!(
        cohort["maturing_weeks"].as_array().expect("weeks").len(),
        3,
        "W42 to W44 of the trend are maturing"
    );
    for sentence in report["summary"].as_array().expect("summary") {
        if sentence["metric"] == "mql_to_sql_30d" {
            panic!("a maturing cohort entered the narrative: {sentence}");
        }
    }
}

#[test]
fn to_date_kpis_are_compared_with_the_same_point_of_the_previous_quarter() {
    let report = report_json("weekly-marketing", WEEK);
    let qtd = tile(&report, "pipeline_created_qtd");
    let comparisons = qtd["comparisons"].as_object().expect("comparisons");
    assert!(
        !comparisons.contains_key("previous"),
        "never week over week"
    );
    // 1 November is day 31 of Q4; day 31 of Q3 is 1 August, in W31.
    let same = &comparisons["previous_window"];
    assert_eq!(same["period"], "2026-W31");
    assert_eq!(same["basis"], "the same point of the previous quarter");
    let then = metric_json("pipeline_created_qtd", "2026-W31", "2026-W31");
    assert_eq!(same["value"], then["points"][0]["value"]);
    assert!(comparisons["year_ago"].is_object());
    for sentence in report["summary"].as_array().expect("summary") {
        let text = sentence["text"].as_str().expect("text");
        if sentence["metric"] == "pipeline_created_qtd" {
            assert!(
                text.contains("the same point of the previous quarter (2026-W31)"),
                "{text}"
            );
        }
        assert!(!text.contains("week over week"), "{text}");
    }
}

#[test]
fn convention_counts_equal_duckdb_over_the_same_files() {
    let report = report_json("weekly-marketing", WEEK);
    let counts = report["health"]["conventions"]
        .as_array()
        .expect("conventions");
    assert_eq!(counts.len(), 7, "every rule of kpi.toml: {counts:?}");
    // The week's bounds in the reporting time zone (America/New_York, EDT then EST).
    let (start, end) = ("2026-10-26 04:00:00+00", "2026-11-02 05:00:00+00");
    let sessions = duckdb_table(demo_data(), "analytics.sessions");
    let campaigns = duckdb_table(demo_data(), "ads.campaign_daily");
    let in_week =
        format!("started_at >= TIMESTAMPTZ '{start}' AND started_at < TIMESTAMPTZ '{end}'");
    let tagged = "(coalesce(utm_source, '') <> '' OR coalesce(utm_medium, '') <> '' OR coalesce(utm_campaign, '') <> '')";
    // Written independently of kpi's predicates, from the rules in kpi.toml.
    let cases = [
        ("utm_source matches", sessions.clone(), in_week.clone(), "coalesce(utm_source, '') <> '' AND NOT regexp_matches(utm_source, '^[a-z0-9]+$')".to_string(), "count(DISTINCT session_id)", "utm_source"),
        ("utm_medium is one of", sessions.clone(), in_week.clone(), "coalesce(utm_medium, '') <> '' AND utm_medium NOT IN ('cpc', 'paid_social', 'social', 'email', 'referral')".to_string(), "count(DISTINCT session_id)", "utm_medium"),
        ("utm_campaign matches", sessions.clone(), in_week.clone(), "coalesce(utm_campaign, '') <> '' AND NOT regexp_matches(utm_campaign, '^[a-z0-9]+(-[a-z0-9]+)*$')".to_string(), "count(DISTINCT session_id)", "utm_campaign"),
        ("campaign_name matches", campaigns, "date >= DATE '2026-10-26' AND date < DATE '2026-11-02'".to_string(), "NOT regexp_matches(campaign_name, '^[A-Z][A-Za-z0-9 -]*$')".to_string(), "sum(spend)", "campaign_name"),
        ("utm_campaign is present", sessions, in_week, format!("coalesce(utm_campaign, '') = '' AND {tagged}"), "count(DISTINCT session_id)", "'(missing)'"),
    ];
    let mut broken = 0;
    for (rule, table, when, breaks, carries, column) in cases {
        let count = counts
            .iter()
            .find(|c| c["rule"].as_str().is_some_and(|r| r.starts_with(rule)))
            .unwrap_or_else(|| panic!("rule {rule}"));
        let rows: i64 = duckdb_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE {when} AND {breaks}"
        ))
        .parse()
        .expect("count");
        assert_eq!(count["rows"].as_i64(), Some(rows), "{rule}");
        let carried: f64 = duckdb_scalar(&format!(
            "SELECT coalesce({carries}, 0) FROM {table} WHERE {when} AND {breaks}"
        ))
        .parse()
        .expect("number");
        assert!(
            (count["carried"].as_f64().expect("carried") - carried).abs() < 1e-6,
            "{rule}"
        );
        let top = duckdb_scalar(&format!(
            "SELECT coalesce(string_agg(v || '=' || n, ',' ORDER BY n DESC, v), '') FROM (SELECT {column} AS v, count(*) AS n FROM {table} WHERE {when} AND {breaks} GROUP BY 1 ORDER BY n DESC, v LIMIT 3)"
        ));
        let ours: Vec<String> = count["top"]
            .as_array()
            .expect("top")
            .iter()
            .map(|pair| format!("{}={}", pair[0].as_str().expect("value"), pair[1]))
            .collect();
        assert_eq!(ours.join(","), top.trim(), "{rule}");
        broken += rows;
    }
    assert!(
        broken > 0,
        "the demo data plants mixed-case UTMs that the conventions catch"
    );
    let findings = report["health"]["findings"].as_array().expect("findings");
    assert!(findings.iter().any(|f| f
        .as_str()
        .is_some_and(|f| f.starts_with("Tracking convention"))));

    // `kpi check` lists them over all the data, and still exits 0 (data, not definitions).
    let output = kpi(
        &[
            "check",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let all: i64 = duckdb_scalar(&format!(
        "SELECT count(*) FROM {} WHERE coalesce(utm_medium, '') <> '' AND utm_medium NOT IN ('cpc', 'paid_social', 'social', 'email', 'referral')",
        duckdb_table(demo_data(), "analytics.sessions")
    ))
    .parse()
    .expect("count");
    let formatted = kpi::metrics::format_value(kpi::defs::Unit::Count, Some(all as f64));
    assert!(
        stdout.contains(&format!(
            "“utm_medium is one of cpc, paid_social, social, email, referral”: {formatted} rows"
        )),
        "{stdout}"
    );
}
