//! Who may do what: the access matrix over a real server, signed links made by `kpi share`
//! and by the library, key rotation, and the settings `kpi serve` refuses.

use std::sync::Arc;

use kpi::config::{Config, Overrides, Secret};
use kpi::links::{Scope, Signer};
use kpi::web::Application;

use crate::support::*;

const WEEK: &str = "2026-W44";
const DASHBOARD: &str = "sales-pipeline";
const TOKEN: &str = "test-token-0123456789";
const KEY: &str = "signing-key-abcdef";

async fn signed_server() -> TestServer {
    TestServer::start(
        &repo(),
        demo_data().to_str().expect("utf-8"),
        &format!(
            "api_token = \"{TOKEN}\"\npage_access = \"signed\"\nsigning_key = \"{KEY}\"\nsigning_keys_previous = [\"retired-key\"]"
        ),
        &[],
    )
    .await
}

/// Status of a request with an optional bearer token.
async fn status(server: &TestServer, method: &str, path: &str, token: Option<&str>) -> u16 {
    let url = format!("{}{path}", server.base);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = match method {
        "POST" => client.post(&url).body("{\"sql\": \"SELECT 1\"}"),
        _ => client.get(&url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request").status().as_u16()
}

fn link(key: &str, scope: &Scope, expires_in: chrono::Duration) -> String {
    Signer::new(Secret::new(key), Vec::new()).link("", scope, chrono::Utc::now() + expires_in)
}

fn report_scope(week: &str) -> Scope {
    Scope::Report {
        dashboard: DASHBOARD.into(),
        week: week.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_matrix_holds() {
    let server = signed_server().await;
    let day = chrono::Duration::days(1);
    let signed = link(KEY, &report_scope(WEEK), day);
    let query = signed.split_once('?').expect("query").1.to_string();
    let rotated = link("retired-key", &report_scope(WEEK), day);
    let expired = link(KEY, &report_scope(WEEK), -day);
    let foreign = link("someone-else", &report_scope(WEEK), day);
    let report = format!("/reports/{DASHBOARD}/{WEEK}");
    let series = format!("/api/v1/metrics/pipeline_created?from={WEEK}&to={WEEK}");
    let snapshot = format!("/api/v1/snapshots/{DASHBOARD}/{WEEK}");
    // (method, path, token, expected)
    let cases: Vec<(&str, String, Option<&str>, u16)> = vec![
        ("GET", "/healthz".into(), None, 200),
        ("GET", "/definitions".into(), None, 200),
        ("GET", "/api/v1/metrics".into(), None, 200),
        ("GET", report.clone(), None, 403),
        ("GET", report.clone(), Some("wrong-token"), 403),
        ("GET", report.clone(), Some(TOKEN), 200),
        ("GET", signed.clone(), None, 200),
        ("GET", rotated.clone(), None, 200),
        ("GET", expired.clone(), None, 410),
        ("GET", foreign.clone(), None, 403),
        ("GET", format!("{report}.csv?{query}"), None, 200),
        ("GET", format!("{report}.json?{query}"), None, 200),
        (
            "GET",
            format!("/charts/{DASHBOARD}/{WEEK}/pipeline-trend.svg?{query}"),
            None,
            200,
        ),
        (
            "GET",
            format!("/reports/{DASHBOARD}/2026-W43?{query}"),
            None,
            403,
        ),
        (
            "GET",
            format!("{report}?{}", query.replace("exp=", "exp=9")),
            None,
            403,
        ),
        ("GET", series.clone(), None, 401),
        ("GET", format!("{series}&{query}"), None, 401),
        ("GET", series.clone(), Some(TOKEN), 200),
        ("GET", "/attribution".into(), None, 401),
        ("GET", "/sends".into(), None, 401),
        ("GET", "/sends".into(), Some(TOKEN), 200),
        ("GET", "/metrics".into(), None, 401),
        ("GET", "/metrics".into(), Some(TOKEN), 200),
        ("POST", "/api/v1/sql".into(), None, 401),
        ("POST", "/api/v1/sql".into(), Some(TOKEN), 200),
        ("POST", snapshot.clone(), None, 401),
        // 201 when new, 200 when another test took the same snapshot first.
        ("POST", snapshot.clone(), Some(TOKEN), 2),
    ];
    let mut failures = Vec::new();
    for (method, path, token, expected) in &cases {
        let actual = status(&server, method, path, *token).await;
        let matches = if *expected == 2 {
            (200..300).contains(&actual)
        } else {
            actual == *expected
        };
        if !matches {
            failures.push(format!(
                "{method} {path} token={token:?}: expected {expected}, got {actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A refused link says what to do.
    let page = reqwest::get(format!("{}{expired}", server.base))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(page.contains("expired"), "{page}");
    assert!(
        page.contains("kpi share sales-pipeline --week 2026-W44"),
        "{page}"
    );

    // The signed page's own links carry the signature, so its exports open.
    let html = reqwest::get(format!("{}{signed}", server.base))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    let csv_link = format!("/reports/{DASHBOARD}/{WEEK}.csv?exp=");
    let at = html.find(&csv_link).expect("a signed CSV link in the page");
    let href: String = html[at..].chars().take_while(|c| *c != '"').collect();
    let href = href.replace("&amp;", "&");
    assert_eq!(status(&server, "GET", &href, None).await, 200, "{href}");

    // A signed link to the dashboard leads to a signed link to its latest week.
    let latest = link(
        KEY,
        &Scope::Dashboard {
            dashboard: DASHBOARD.into(),
        },
        day,
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = client
        .get(format!("{}{latest}", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(redirect.status().as_u16(), 303);
    let location = redirect.headers()["location"].to_str().expect("location");
    assert!(location.contains("sig="), "{location}");
    assert_eq!(
        status(&server, "GET", location, None).await,
        200,
        "{location}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpi_share_prints_a_link_the_server_accepts() {
    let server = signed_server().await;
    let output = kpi(
        &[
            "share",
            DASHBOARD,
            "--week",
            WEEK,
            "--expires",
            "2h",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
        ],
        &[("KPI_SIGNING_KEY", KEY), ("KPI_PUBLIC_URL", &server.base)],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8(output.stdout).expect("utf-8");
    let url = url.trim();
    assert!(url.starts_with(&format!("{}/reports/{DASHBOARD}/{WEEK}?exp=", server.base)));
    let response = reqwest::get(url).await.expect("request");
    assert_eq!(response.status().as_u16(), 200, "{url}");

    let without_key = kpi(
        &[
            "share",
            DASHBOARD,
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(without_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without_key.stderr).contains("KPI_SIGNING_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loopback_server_needs_nothing_and_an_exposed_one_refuses_to_start() {
    let open = TestServer::start(&repo(), demo_data().to_str().expect("utf-8"), "", &[]).await;
    let report = format!("/reports/{DASHBOARD}/{WEEK}");
    assert_eq!(status(&open, "GET", &report, None).await, 200);
    assert_eq!(status(&open, "POST", "/api/v1/sql", None).await, 200);

    let text = std::fs::read_to_string(repo().join("kpi.toml")).expect("kpi.toml");
    let env = |_: &str| None;
    let build = |addr: &str, server_keys: &str| {
        let overrides = Overrides {
            data: Some(demo_data().to_str().expect("utf-8").to_string()),
            addr: Some(addr.to_string()),
        };
        let text = insert_keys(&text, server_keys);
        Arc::new(Config::from_parts(&repo(), &text, &env, &overrides).expect("config"))
    };
    let exposed = Application::build(build("0.0.0.0:0", "")).await;
    let error = exposed.err().expect("refused");
    assert_eq!(error.code, "insecure_server");
    assert!(error.message.contains("KPI_API_TOKEN"), "{}", error.message);
    let unsigned =
        Application::build(build("0.0.0.0:0", &format!("api_token = \"{TOKEN}\""))).await;
    let error = unsigned.err().expect("refused");
    assert_eq!(error.code, "no_signing_key");
    assert!(
        error.message.contains("KPI_SIGNING_KEY"),
        "{}",
        error.message
    );
}

/// `text` with `keys` under its `[server]` section.
fn insert_keys(text: &str, keys: &str) -> String {
    match text.find("[server]\n") {
        Some(at) => {
            let at = at + "[server]\n".len();
            format!("{}{keys}\n{}", &text[..at], &text[at..])
        }
        None => format!("{text}\n[server]\n{keys}\n"),
    }
}

#[test]
fn secrets_never_show_in_debug_output() {
    let text = format!(
        "[server]\napi_token = \"{TOKEN}\"\nsigning_key = \"{KEY}\"\n[email]\npassword = \"smtp-pass-xyz\"\n[data.s3]\nsecret_access_key = \"s3-secret-xyz\"\n"
    );
    let config =
        Config::from_parts(&repo(), &text, &|_| None, &Overrides::default()).expect("config");
    let debug = format!("{config:?}");
    for secret in [TOKEN, KEY, "smtp-pass-xyz", "s3-secret-xyz"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("redacted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_http_ids_compression_and_prometheus() {
    let server = signed_server().await;
    let client = reqwest::Client::new();
    // A request id is generated, or the caller's is kept.
    let generated = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("request");
    let id = generated.headers()["x-request-id"].to_str().expect("id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let propagated = client
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(propagated.headers()["x-request-id"], "abc-123");
    // Pages are compressed for clients that ask.
    for encoding in ["br", "gzip"] {
        let page = client
            .get(format!("{}/reports/{DASHBOARD}/{WEEK}", server.base))
            .bearer_auth(TOKEN)
            .header("accept-encoding", encoding)
            .send()
            .await
            .expect("request");
        assert_eq!(page.status().as_u16(), 200);
        assert_eq!(page.headers()["content-encoding"], encoding);
    }
    // A body over the limit is refused before any work, on its declared length alone: the
    // request announces 2 MiB and sends 1 KiB of it, and the answer comes without the rest (a
    // raw connection: an HTTP client still writing the body would race the server's close).
    let address = server.base.trim_start_matches("http://").to_string();
    let mut raw = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/sql HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(head.as_bytes()).await.expect("write head");
    raw.write_all(&[b' '; 1024]).await.expect("write some body");
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), raw.read(&mut answer))
        .await
        .expect("an answer before the body is sent")
        .expect("read");
    let status_line = String::from_utf8_lossy(&answer[..read]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    // SQL, then the counters.
    let sql = client
        .post(format!("{}/api/v1/sql", server.base))
        .bearer_auth(TOKEN)
        .body("{\"sql\": \"SELECT 1\"}")
        .send()
        .await
        .expect("request");
    assert_eq!(sql.status().as_u16(), 200);
    let text = client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    for expected in [
        "# TYPE kpi_http_requests_total counter",
        "kpi_http_requests_total{route=\"/healthz\",status=\"200\"}",
        "kpi_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"}",
        "kpi_sql_queries_total{outcome=\"ok\"}",
        "kpi_report_cache_total{result=",
        "kpi_source_seconds_since_landed{source=\"crm\"}",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains(TOKEN), "no secret in /metrics");
}
