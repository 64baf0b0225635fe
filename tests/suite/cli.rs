//! The `kpi` binary: demo, query and check, checked against DuckDB over the same files.

use crate::support::*;

#[test]
fn every_table_count_matches_duckdb() {
    let data = demo_data();
    let data_arg = data.to_str().expect("utf-8");
    for table in TABLES {
        let rows = kpi_query_json(
            &repo(),
            data_arg,
            &format!("SELECT count(*) AS n FROM {table}"),
            &[],
        );
        let ours = rows[0]["n"].as_i64().expect("count");
        let theirs: i64 = duckdb_scalar(&format!(
            "SELECT count(*) FROM {}",
            duckdb_table(data, table)
        ))
        .parse()
        .expect("integer");
        assert_eq!(ours, theirs, "{table}");
        assert!(ours > 0, "{table} is empty");
    }
}

#[test]
fn reporting_views_remove_exactly_the_planted_duplicates() {
    let data = demo_data();
    let data_arg = data.to_str().expect("utf-8");
    let cases = [
        (
            "SELECT count(*) AS n FROM reporting.campaign_daily",
            format!("SELECT count(*) FROM (SELECT DISTINCT * EXCLUDE (month) FROM {})", duckdb_table(data, "ads.campaign_daily")),
        ),
        (
            "SELECT count(*) AS n FROM reporting.sessions",
            format!("SELECT count(DISTINCT session_id) FROM {}", duckdb_table(data, "analytics.sessions")),
        ),
        (
            "SELECT CAST(sum(spend) * 100 AS BIGINT) AS n FROM reporting.campaign_daily",
            format!(
                "SELECT CAST(sum(spend) * 100 AS BIGINT) FROM (SELECT DISTINCT * EXCLUDE (month) FROM {})",
                duckdb_table(data, "ads.campaign_daily")
            ),
        ),
    ];
    for (ours_sql, duck_sql) in cases {
        let rows = kpi_query_json(&repo(), data_arg, ours_sql, &[]);
        let ours = rows[0]["n"].as_i64().expect("number");
        let theirs: i64 = duckdb_scalar(&duck_sql).parse().expect("integer");
        assert_eq!(ours, theirs, "{ours_sql}");
    }
    // The mess is really there: raw tables have more rows than the cleaned views.
    let raw = kpi_query_json(
        &repo(),
        data_arg,
        "SELECT count(*) AS n FROM analytics.sessions",
        &[],
    );
    let clean = kpi_query_json(
        &repo(),
        data_arg,
        "SELECT count(*) AS n FROM reporting.sessions",
        &[],
    );
    assert!(raw[0]["n"].as_i64() > clean[0]["n"].as_i64());
    let mixed = kpi_query_json(
        &repo(),
        data_arg,
        "SELECT count(*) AS n FROM analytics.sessions WHERE utm_source <> lower(utm_source)",
        &[],
    );
    assert!(
        mixed[0]["n"].as_i64().expect("count") > 0,
        "UTM case mess is planted"
    );
}

#[test]
fn demo_is_deterministic_and_refuses_a_non_empty_folder() {
    let first = tempfile::TempDir::new().expect("dir");
    let second = tempfile::TempDir::new().expect("dir");
    for dir in [&first, &second] {
        let out = dir.path().to_str().expect("utf-8");
        let output = kpi(
            &[
                "demo",
                "--out",
                out,
                "--end",
                "2026-01-04",
                "--weeks",
                "3",
                "--scale",
                "0.2",
                "--seed",
                "3",
            ],
            &[],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let file = "analytics/sessions/sessions-2025-12.parquet";
    let a = std::fs::read(first.path().join(file)).expect("file");
    let b = std::fs::read(second.path().join(file)).expect("file");
    assert_eq!(a, b, "same seed and end date give the same bytes");

    let out = first.path().to_str().expect("utf-8");
    let again = kpi(&["demo", "--out", out, "--weeks", "3"], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = kpi(
        &[
            "demo",
            "--out",
            out,
            "--end",
            "2026-01-04",
            "--weeks",
            "3",
            "--scale",
            "0.2",
            "--seed",
            "3",
            "--force",
        ],
        &[],
    );
    assert!(forced.status.success());
    assert_eq!(std::fs::read(first.path().join(file)).expect("file"), a);
}

#[test]
fn check_passes_on_the_demo_project() {
    let data = demo_data().to_str().expect("utf-8");
    let output = kpi(
        &[
            "check",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            data,
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with("ok: 7 tables, 10 views"), "{stdout}");
}

#[test]
fn check_names_three_distinct_mistakes_with_file_and_line() {
    let project = project_copy();
    let metrics = project.path().join("metrics");
    // 1. an unknown table, 2. a measure that does not plan, 3. a duplicate name.
    let ads = std::fs::read_to_string(metrics.join("ads.toml")).expect("read");
    let ads = ads.replacen(
        "table = \"reporting.campaign_daily\"",
        "table = \"ads.campaign_dayly\"",
        1,
    );
    let ads = ads.replacen(
        "measure = \"SUM(impressions)\"",
        "measure = \"SUM(impresions)\"",
        1,
    );
    std::fs::write(metrics.join("ads.toml"), ads).expect("write");
    std::fs::write(
        metrics.join("more.toml"),
        "# a second definition of an existing name\n[[metric]]\nname = \"sessions\"\nsource = \"analytics\"\nmeasure = \"COUNT(*)\"\ntable = \"reporting.sessions\"\ntime_column = \"started_at\"\n",
    )
    .expect("write");
    let data = demo_data().to_str().expect("utf-8");
    let output = kpi(
        &[
            "check",
            "--project",
            project.path().to_str().expect("utf-8"),
            "--data",
            data,
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "metrics/ads.toml:14: metric `spend` reads unknown table `ads.campaign_dayly`"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("hint: tables of source `ads`: ads.campaign_daily"),
        "{stdout}"
    );
    assert!(
        stdout.contains("metrics/ads.toml:27: measure of metric `impressions` does not plan"),
        "{stdout}"
    );
    assert!(stdout.contains("No field named impresions"), "{stdout}");
    assert!(
        stdout.contains("metrics/more.toml:3: duplicate metric name `sessions`; first defined at metrics/analytics.toml:4"),
        "{stdout}"
    );
    assert!(stdout.contains("3 problem(s) found"), "{stdout}");
}

#[test]
fn check_names_an_attribution_input_that_breaks_the_column_contract() {
    let project = project_copy();
    let conversions = project.path().join("queries/conversions.sql");
    let text = std::fs::read_to_string(&conversions).expect("read");
    std::fs::write(
        &conversions,
        text.replace(" AS converted_at", " AS happened_at"),
    )
    .expect("write");
    let data = demo_data().to_str().expect("utf-8");
    let output = kpi(
        &[
            "check",
            "--project",
            project.path().to_str().expect("utf-8"),
            "--data",
            data,
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("queries/conversions.sql:1: `reporting.conversions` is an attribution input ([attribution] in kpi.toml) but has no column(s) converted_at"),
        "{stdout}"
    );
    // The attributed metrics are then reported as reading a table that does not exist, with
    // what would make it exist.
    assert!(
        stdout.contains("metric `attributed_mqls` reads unknown table `reporting.attribution`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("exists when reporting.touches and reporting.conversions"),
        "{stdout}"
    );
}

#[test]
fn check_reports_view_cycles_and_config_problems() {
    let project = project_copy();
    let queries = project.path().join("queries");
    std::fs::write(
        queries.join("loop_a.sql"),
        "SELECT * FROM reporting.loop_b\n",
    )
    .expect("write");
    std::fs::write(
        queries.join("loop_b.sql"),
        "SELECT * FROM reporting.loop_a\n",
    )
    .expect("write");
    let data = demo_data().to_str().expect("utf-8");
    let output = kpi(
        &[
            "check",
            "--project",
            project.path().to_str().expect("utf-8"),
            "--data",
            data,
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("cycle: reporting.loop_a → reporting.loop_b → reporting.loop_a"),
        "{stdout}"
    );

    let toml = std::fs::read_to_string(project.path().join("kpi.toml")).expect("read");
    std::fs::write(
        project.path().join("kpi.toml"),
        toml.replace("America/New_York", "America/Gotham"),
    )
    .expect("write");
    let output = kpi(
        &[
            "check",
            "--project",
            project.path().to_str().expect("utf-8"),
            "--data",
            data,
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("kpi.toml:9: unknown time zone `America/Gotham`"),
        "{stderr}"
    );
}

/// `kpi report --out` with an unknown extension is refused before any work: no rollup store
/// is even opened.
#[test]
fn report_refuses_an_unknown_output_format_before_computing() {
    let data = demo_data().to_str().expect("utf-8");
    let dir = tempfile::TempDir::new().expect("dir");
    let store = dir.path().join("rollups");
    let out = dir.path().join("report.txt");
    let output = kpi(
        &[
            "report",
            "weekly-marketing",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            data,
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &[("KPI_ROLLUPS", store.to_str().expect("utf-8"))],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("use a .html, .json or .csv file name"),
        "{stderr}"
    );
    assert!(!store.exists() && !out.exists());
}

#[test]
fn query_refuses_writes_and_formats_csv() {
    let data = demo_data().to_str().expect("utf-8");
    let project = repo();
    let project = project.to_str().expect("utf-8");
    for sql in [
        "DROP TABLE ads.campaign_daily",
        "COPY (SELECT 1) TO '/tmp/x.parquet'",
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc/'",
    ] {
        let output = kpi(
            &["query", "--project", project, "--data", data, "--sql", sql],
            &[],
        );
        assert_eq!(output.status.code(), Some(2), "{sql}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("only read-only queries"),
            "{sql}"
        );
    }
    let output = kpi(
        &[
            "query",
            "--project",
            project,
            "--data",
            data,
            "--format",
            "csv",
            "--sql",
            "SELECT 1 AS a, 'x' AS b",
        ],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "a,b\n1,x");
}

/// A query whose sort needs several times the query pool (`engine.memory_limit_mb` 64: a pool
/// of 56 MiB; 3,000,000 rows sorted for a window) spills to disk and answers exactly; with no
/// writable temporary directory it fails and says what to do, so the first answer did spill.
#[test]
fn a_query_past_the_memory_pool_spills_to_disk() {
    let data = demo_data().to_str().expect("utf-8");
    let n: i128 = 3_000_000;
    let sql = format!(
        "SELECT count(*) AS n, sum(r * x) AS s FROM (SELECT value AS x, \
         row_number() OVER (ORDER BY value DESC) AS r FROM generate_series(1, {n}))"
    );
    let budget = [("KPI_MEMORY_LIMIT_MB", "64")];
    let rows = kpi_query_json(&repo(), data, &sql, &budget);
    // r = n + 1 - x, so the sum of r * x over 1..=n is n(n+1)(n+2)/6.
    let expected = n * (n + 1) * (n + 2) / 6;
    assert_eq!(rows[0]["n"].as_i64(), Some(n as i64), "{rows}");
    assert_eq!(
        rows[0]["s"].as_i64().map(i128::from),
        Some(expected),
        "{rows}"
    );

    let missing = tempfile::TempDir::new().expect("dir");
    let missing = missing.path().join("gone");
    let output = kpi(
        &[
            "query",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            data,
            "--sql",
            &sql,
        ],
        &[budget[0], ("TMPDIR", missing.to_str().expect("utf-8"))],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not spill to the temporary directory")
            && stderr.contains("Set TMPDIR to a writable directory"),
        "{stderr}"
    );
}

#[test]
fn attribution_command_credits_the_reference_vectors_and_explains_bad_input() {
    let fixtures = repo().join("../shared/fixtures/attribution/edge_cases");
    let touches = fixtures.join("touches.csv");
    let conversions = fixtures.join("conversions.csv");
    let out = tempfile::TempDir::new().expect("dir");
    let csv = out.path().join("credits.csv");
    let text = attribute_all(&touches, &conversions, &csv);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(
        &header[..5],
        &[
            "conversion_id",
            "touch_id",
            "position",
            "channel",
            "campaign"
        ]
    );
    assert!(header.contains(&"credit_markov") && header.contains(&"revenue_credit_time_decay"));
    let linear = header
        .iter()
        .position(|h| *h == "revenue_credit_linear")
        .expect("column");
    let c7: Vec<&str> = lines
        .clone()
        .filter(|l| l.starts_with("c7,"))
        .map(|l| l.split(',').nth(linear).expect("cell"))
        .collect();
    assert_eq!(c7, vec!["4.99", "5.00"]);
    assert_eq!(lines.clone().count(), 15);
    // Every credit equals the reference vector (the CLI streams entity by entity).
    let expected =
        std::fs::read_to_string(fixtures.join("expected_credits.csv")).expect("expected");
    let expected: Vec<Vec<&str>> = expected
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let column = |name: &str| header.iter().position(|h| *h == name).expect("column");
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let row = expected
            .iter()
            .find(|e| e[0] == cells[0] && e[1] == cells[1])
            .expect("a reference row");
        for (ours, theirs) in [
            ("credit_linear", 9),
            ("credit_time_decay", 11),
            ("credit_last_non_direct", 8),
        ] {
            let got: f64 = cells[column(ours)].parse().expect("number");
            let want: f64 = row[theirs].parse().expect("number");
            assert!((got - want).abs() < 1e-9, "{line}: {ours} {got} vs {want}");
        }
    }

    // Other column names, mapped; Parquet out; DuckDB reads it back.
    let renamed = out.path().join("touches_renamed.csv");
    std::fs::write(
        &renamed,
        std::fs::read_to_string(&touches)
            .expect("read")
            .replacen("user_id", "contact_id", 1),
    )
    .expect("write");
    let parquet = out.path().join("credits.parquet");
    let output = kpi(
        &[
            "attribution",
            "--touches",
            renamed.to_str().expect("utf-8"),
            "--conversions",
            conversions.to_str().expect("utf-8"),
            "--model",
            "last_non_direct",
            "--columns",
            "touch_entity=contact_id",
            "--out",
            parquet.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total = duckdb_scalar(&format!(
        "SELECT sum(revenue_credit) FROM '{}'",
        parquet.display()
    ));
    assert_eq!(
        total, "220.99",
        "revenue credits reconcile with total revenue"
    );
    // Arrow readers read the revenue credits as Decimal128(18, 2), as the file says (the
    // writer hands Parquet 8-byte decimals; the embedded schema is the file's).
    let file = std::fs::File::open(&parquet).expect("open credits");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file");
    let schema = reader.schema();
    assert_eq!(
        schema
            .field_with_name("revenue_credit")
            .expect("revenue_credit")
            .data_type(),
        &arrow::datatypes::DataType::Decimal128(18, 2)
    );
    let batches: Vec<_> = reader
        .build()
        .expect("reader")
        .collect::<Result<_, _>>()
        .expect("batches");
    for batch in &batches {
        let field = batch.schema().field_with_name("revenue_credit").cloned();
        assert_eq!(
            field.expect("revenue_credit").data_type(),
            &arrow::datatypes::DataType::Decimal128(18, 2)
        );
    }

    // Without the mapping: says which column is missing and how to map it; writes nothing.
    let missing = out.path().join("never.csv");
    let output = kpi(
        &[
            "attribution",
            "--touches",
            renamed.to_str().expect("utf-8"),
            "--conversions",
            conversions.to_str().expect("utf-8"),
            "--out",
            missing.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no column `user_id`") && stderr.contains("--columns touch_entity=COLUMN"),
        "{stderr}"
    );
    assert!(!missing.exists());
    let bad = out.path().join("bad.csv");
    std::fs::write(
        &bad,
        "conversion_id,user_id,ts,conversion_type,revenue\nc1,u1,yesterday,lead,1.00\n",
    )
    .expect("write");
    let output = kpi(
        &[
            "attribution",
            "--touches",
            touches.to_str().expect("utf-8"),
            "--conversions",
            bad.to_str().expect("utf-8"),
            "--out",
            missing.to_str().expect("utf-8"),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("row `c1`: `ts` = `yesterday` is not a timestamp"),
        "{stderr}"
    );
    assert!(!missing.exists());
}

/// `kpi attribution --model all` into `out` (a CSV file); its text.
fn attribute_all(
    touches: &std::path::Path,
    conversions: &std::path::Path,
    out: &std::path::Path,
) -> String {
    let output = attribute_all_with(touches, conversions, out, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out).expect("credits")
}

/// `kpi attribution --model all` into `out` with `extra` arguments.
fn attribute_all_with(
    touches: &std::path::Path,
    conversions: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "attribution",
        "--touches",
        touches.to_str().expect("utf-8"),
        "--conversions",
        conversions.to_str().expect("utf-8"),
        "--model",
        "all",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    kpi(&args, &[])
}

/// Typed timestamps are read as instants (not printed and parsed): Parquet inputs with naive
/// and zoned timestamps give the CSV inputs' credits to the byte, for every model, in memory
/// and sorted on disk.
#[test]
fn attribution_over_typed_timestamps_equals_the_csv_inputs() {
    let fixtures = repo().join("../shared/fixtures/attribution/edge_cases");
    let out = tempfile::TempDir::new().expect("dir");
    let run = |touches: &std::path::Path, conversions: &std::path::Path, name: &str| {
        attribute_all(touches, conversions, &out.path().join(name))
    };
    let from_csv = run(
        &fixtures.join("touches.csv"),
        &fixtures.join("conversions.csv"),
        "from-csv.csv",
    );
    let touches = out.path().join("touches.parquet");
    let conversions = out.path().join("conversions.parquet");
    // Touches as naive UTC timestamps (microseconds), conversions as zoned ones.
    duckdb_scalar(&format!(
        "COPY (SELECT * REPLACE (timezone('UTC', CAST(ts AS TIMESTAMPTZ)) AS ts) FROM read_csv('{}', all_varchar = true)) TO '{}' (FORMAT parquet)",
        fixtures.join("touches.csv").display(),
        touches.display()
    ));
    duckdb_scalar(&format!(
        "SET TimeZone = 'Europe/Paris'; COPY (SELECT * REPLACE (CAST(ts AS TIMESTAMPTZ) AS ts) FROM read_csv('{}', all_varchar = true)) TO '{}' (FORMAT parquet)",
        fixtures.join("conversions.csv").display(),
        conversions.display()
    ));
    let from_parquet = run(&touches, &conversions, "from-parquet.csv");
    assert_eq!(from_csv.lines().count(), 16, "a header and 15 credits");
    assert_eq!(from_parquet, from_csv);

    // Past the memory budget the inputs are sorted on disk: the run says so, same bytes.
    let sorted = out.path().join("sorted.csv");
    let output = attribute_all_with(&touches, &conversions, &sorted, &["--memory-mib", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("outgrew --memory-mib 0: sorted them on disk"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&sorted).expect("credits"), from_csv);
}
