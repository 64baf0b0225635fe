//! The running server over real HTTP: freshness, the SQL endpoint's guard and limits,
//! definition reloads, and tables whose files disagree.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_landed_while_serving_is_counted_by_the_next_query() {
    let data = demo_data_copy();
    let server = TestServer::start(&repo(), data.path().to_str().expect("utf-8"), "", &[]).await;
    let before = server
        .scalar("SELECT count(*) FROM analytics.sessions")
        .await
        .as_i64()
        .expect("count");
    let health = server.get_json("/healthz").await;
    let version_before = health["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "analytics.sessions")
        .expect("sessions")["data_version"]
        .clone();

    let folder = data.path().join("analytics/sessions");
    let source = folder.join("sessions-2026-01.parquet");
    let added = parquet_rows(&source);
    land(
        &folder.join("sessions-2026-01-resend.parquet"),
        &std::fs::read(&source).expect("read"),
    );
    server.settle().await;

    let after = server
        .scalar("SELECT count(*) FROM analytics.sessions")
        .await
        .as_i64()
        .expect("count");
    assert_eq!(after, before + added);
    // The de-duplicating view absorbs the re-sent rows: its count does not change.
    let clean = server
        .scalar("SELECT count(*) FROM reporting.sessions")
        .await
        .as_i64()
        .expect("count");
    let distinct = server
        .scalar("SELECT count(DISTINCT session_id) FROM analytics.sessions")
        .await
        .as_i64()
        .expect("count");
    assert_eq!(clean, distinct);
    let health = server.get_json("/healthz").await;
    let version_after = health["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "analytics.sessions")
        .expect("sessions")["data_version"]
        .clone();
    assert_ne!(
        version_before, version_after,
        "data version follows the files"
    );

    // A whole new table appears without a restart too.
    let contacts = data.path().join("crm/contacts/contacts.parquet");
    land(
        &data.path().join("crm/contacts_archive/part-0.parquet"),
        &std::fs::read(&contacts).expect("read"),
    );
    server.settle().await;
    let archived = server
        .scalar("SELECT count(*) FROM crm.contacts_archive")
        .await
        .as_i64()
        .expect("count");
    assert_eq!(archived, parquet_rows(&contacts));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_endpoint_refuses_every_forbidden_statement() {
    let server = TestServer::start(&repo(), demo_data().to_str().expect("utf-8"), "", &[]).await;
    let forbidden = [
        ("DROP TABLE ads.campaign_daily", "DROP"),
        ("DELETE FROM ads.campaign_daily", "DELETE"),
        (
            "INSERT INTO ads.campaign_daily SELECT * FROM ads.campaign_daily",
            "INSERT",
        ),
        ("UPDATE ads.campaign_daily SET clicks = 0", "UPDATE"),
        ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc/'",
            "CREATE EXTERNAL TABLE",
        ),
        ("COPY (SELECT 1) TO '/tmp/kpi-escape.parquet'", "COPY"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        (
            "SELECT 1; DROP TABLE ads.campaign_daily",
            "exactly one statement",
        ),
    ];
    for (sql, word) in forbidden {
        let (status, body) = server.sql(sql).await;
        assert_eq!(status, 400, "{sql}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(word), "{sql}: {message}");
        let code = body["error"]["code"].as_str().expect("code");
        assert!(
            code == "forbidden_statement" || code == "multiple_statements",
            "{sql}: {code}"
        );
    }
    assert!(!std::path::Path::new("/tmp/kpi-escape.parquet").exists());
    // Files outside the data root are not tables.
    let (status, body) = server.sql("SELECT * FROM '/etc/passwd'").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .sql("SELECT * FROM read_parquet('/etc/passwd')")
        .await;
    assert_eq!(status, 400, "{body}");
    // Planning errors and syntax errors are distinct codes.
    let (_, body) = server.sql("SELECT nope FROM ads.campaign_daily").await;
    assert_eq!(body["error"]["code"], "sql_plan");
    let (_, body) = server.sql("SELEC 1").await;
    assert_eq!(body["error"]["code"], "sql_syntax");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_endpoint_caps_rows_answers_csv_and_stops_slow_queries() {
    let server = TestServer::start(
        &repo(),
        demo_data().to_str().expect("utf-8"),
        // Generous enough for the quick queries on a loaded 2-core machine; the slow query
        // below runs for minutes.
        "sql_timeout_ms = 5000\nsql_row_limit = 5",
        &[],
    )
    .await;
    let (status, body) = server
        .sql("SELECT session_id FROM analytics.sessions LIMIT 50")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["row_count"], 5);
    assert_eq!(body["truncated"], true);
    assert_eq!(body["rows"].as_array().expect("rows").len(), 5);

    let response = server
        .client
        .post(format!("{}/api/v1/sql", server.base))
        .header("accept", "text/csv")
        .json(&serde_json::json!({ "sql": "SELECT 2 AS two, 'b' AS letter" }))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(response.text().await.expect("text"), "two,letter\n2,b\n");

    // A query far beyond the limit: every event joined with every event on the same page.
    let slow = {
        let client = server.client.clone();
        let url = format!("{}/api/v1/sql", server.base);
        tokio::spawn(async move {
            let sql = "SELECT count(*) FROM analytics.events a JOIN analytics.events b ON a.page = b.page";
            let response = client
                .post(url)
                .json(&serde_json::json!({ "sql": sql }))
                .send()
                .await
                .expect("request");
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.expect("json"),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While it runs, the server keeps answering.
    let health = tokio::time::timeout(Duration::from_secs(10), server.get_json("/healthz")).await;
    assert!(health.is_ok(), "health answered while a slow query ran");
    let (status, body) = slow.await.expect("task");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "query_timeout");
    assert_eq!(server.scalar("SELECT 40 + 2").await, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_last_valid_definitions_serving() {
    let project = project_copy();
    let server = TestServer::start(
        project.path(),
        demo_data().to_str().expect("utf-8"),
        "reload_interval_ms = 100",
        &[],
    )
    .await;
    let health = server.get_json("/healthz").await;
    assert_eq!(health["definitions"]["status"], "valid");
    assert_eq!(health["definitions"]["metrics"], 21);

    // A valid edit is picked up: a new view becomes queryable.
    std::fs::write(
        project.path().join("queries/paid_sessions.sql"),
        "SELECT * FROM reporting.sessions WHERE channel LIKE 'paid%'\n",
    )
    .expect("write");
    let reloaded = eventually(20, || async {
        server
            .sql("SELECT count(*) FROM reporting.paid_sessions")
            .await
            .0
            == 200
    })
    .await;
    assert!(reloaded, "new view served after reload");

    // A broken edit: the server says so and keeps serving the last valid set.
    std::fs::write(
        project.path().join("metrics/broken.toml"),
        "[[metric]]\nname = \"broken\"\nsource = \"ads\"\nmeasure = \"SUM(nope)\"\ntable = \"reporting.campaign_daily\"\ntime_column = \"date\"\n",
    )
    .expect("write");
    let noticed = eventually(20, || async {
        let health = server.get_json("/healthz").await;
        health["definitions"]["status"] == "invalid_edit_ignored"
    })
    .await;
    assert!(noticed, "health shows the broken edit");
    let health = server.get_json("/healthz").await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["definitions"]["metrics"], 21);
    let errors = health["definitions"]["errors"].to_string();
    assert!(
        errors.contains("metrics/broken.toml:4: measure of metric `broken` does not plan"),
        "{errors}"
    );
    assert_eq!(
        server
            .sql("SELECT count(*) FROM reporting.paid_sessions")
            .await
            .0,
        200
    );

    // Fixing it clears the error.
    std::fs::remove_file(project.path().join("metrics/broken.toml")).expect("remove");
    let fixed = eventually(20, || async {
        server.get_json("/healthz").await["definitions"]["status"] == "valid"
    })
    .await;
    assert!(fixed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_disagree_on_schema_are_named_and_only_their_table_degrades() {
    let data = demo_data_copy();
    let server = TestServer::start(&repo(), data.path().to_str().expect("utf-8"), "", &[]).await;
    // A contacts file from another export: contact_id is a number and most columns are missing.
    let schema = Arc::new(Schema::new(vec![
        Field::new("contact_id", DataType::Int64, false),
        Field::new("lead_source", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["x", "y"])),
        ],
    )
    .expect("batch");
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    land(
        &data.path().join("crm/contacts/contacts-extra.parquet"),
        &bytes,
    );
    server.settle().await;

    let (status, body) = server.sql("SELECT count(*) FROM crm.contacts").await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("crm/contacts/contacts-extra.parquet"),
        "{message}"
    );
    assert!(
        message.contains("crm/contacts/contacts.parquet"),
        "{message}"
    );
    assert!(message.contains("disagree on schema"), "{message}");

    let health = server.get_json("/healthz").await;
    assert_eq!(health["status"], "degraded");
    let contacts = health["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "crm.contacts")
        .expect("contacts")
        .clone();
    assert!(contacts["error"]
        .as_str()
        .expect("error")
        .contains("contacts-extra.parquet"));

    // Other tables are untouched; a corrupt file is reported by name as well.
    assert_eq!(
        server
            .sql("SELECT count(*) FROM ads.campaign_daily")
            .await
            .0,
        200
    );
    land(
        &data.path().join("email/sends/sends-broken.parquet"),
        b"not parquet at all",
    );
    server.settle().await;
    let (status, body) = server.sql("SELECT count(*) FROM email.sends").await;
    assert_eq!(status, 503);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("sends-broken.parquet is not readable as Parquet")
            || body["error"]["message"]
                .as_str()
                .expect("message")
                .contains("`email/sends/sends-broken.parquet` is not readable"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_needs_the_token_when_one_is_configured() {
    let server = TestServer::start(
        &repo(),
        demo_data().to_str().expect("utf-8"),
        "api_token = \"s3cret-token\"",
        &[],
    )
    .await;
    let (status, body) = server.sql("SELECT 1").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let url = format!("{}/api/v1/sql", server.base);
    let wrong = server
        .client
        .post(&url)
        .bearer_auth("s3cret-tokem")
        .json(&serde_json::json!({"sql": "SELECT 1"}))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status().as_u16(), 401);
    let right = server
        .client
        .post(&url)
        .bearer_auth("s3cret-token")
        .json(&serde_json::json!({"sql": "SELECT 1 AS one"}))
        .send()
        .await
        .expect("request");
    assert_eq!(right.status().as_u16(), 200);
    assert_eq!(
        server.get_json("/healthz").await["status"],
        "ok",
        "reads stay open"
    );
}

/// The server's one budget: with `KPI_MEMORY_LIMIT_MB=64` a query needing several times its
/// 56 MiB pool answers exactly (it spills), and `/healthz` shows the budget's shares and what
/// the pool and the spill files hold once the query is done (nothing; no background build
/// runs, so nothing else holds any).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_servers_pool_spills_and_healthz_shows_the_budget() {
    let server = TestServer::start(
        &repo(),
        demo_data().to_str().expect("utf-8"),
        "",
        &[
            ("KPI_MEMORY_LIMIT_MB", "64"),
            ("KPI_ROLLUPS_BACKGROUND", "false"),
        ],
    )
    .await;
    let n: i64 = 3_000_000;
    let total = server
        .scalar(&format!(
            "SELECT sum(r * x) AS s FROM (SELECT value AS x, \
             row_number() OVER (ORDER BY value DESC) AS r FROM generate_series(1, {n}))"
        ))
        .await;
    // r = n + 1 - x: the sum of r * x over 1..=n is n(n+1)(n+2)/6.
    assert_eq!(total.as_i64(), Some(n * (n + 1) / 6 * (n + 2)), "{total}");
    let memory = server.get_json("/healthz").await["memory"].clone();
    assert_eq!(memory["budget_bytes"], 64 << 20, "{memory}");
    assert_eq!(memory["query_pool_bytes"], (64 << 20) / 8 * 7, "{memory}");
    assert_eq!(memory["query_pool_reserved_bytes"], 0, "{memory}");
    assert_eq!(memory["spilled_bytes"], 0, "{memory}");
}
