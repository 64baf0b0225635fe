//! Report pages end to end: a real browser, ETags, an unavailable source, the golden page.

use std::collections::BTreeMap;

use crate::support::*;

const WEEK: &str = "2026-W44";

/// The value the metric API gives for one number of a page (by its data-* attributes).
async fn api_value(
    server: &TestServer,
    cache: &mut BTreeMap<String, BTreeMap<String, Option<f64>>>,
    attributes: &BTreeMap<String, String>,
) -> Option<f64> {
    let metric = &attributes["metric"];
    let period = &attributes["period"];
    let mut query = format!("from={period}&to={period}");
    if let Some(dimension) = attributes.get("dimension") {
        query.push_str(&format!("&by={dimension}"));
    }
    if let (Some(model), Some(lookback)) = (attributes.get("model"), attributes.get("lookback")) {
        query.push_str(&format!("&model={model}&lookback={lookback}"));
    }
    let key = format!("{metric}?{query}");
    if !cache.contains_key(&key) {
        let series = server
            .get_json(&format!("/api/v1/metrics/{metric}?{query}"))
            .await;
        let mut values = BTreeMap::new();
        for point in series["points"].as_array().expect("points") {
            let dimension_value = attributes
                .get("dimension")
                .map(|d| {
                    point["dimensions"][d]
                        .as_str()
                        .unwrap_or("(none)")
                        .to_string()
                })
                .unwrap_or_default();
            values.insert(dimension_value, point["value"].as_f64());
        }
        cache.insert(key.clone(), values);
    }
    let dimension_value = attributes
        .get("dimensionValue")
        .cloned()
        .unwrap_or_default();
    cache[&key].get(&dimension_value).copied().flatten()
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_report_in_a_real_browser_matches_the_api_number_for_number() {
    let node = std::env::var("KPI_TEST_NODE").unwrap_or_else(|_| {
        panic!("KPI_TEST_NODE is not set: run the tests with scripts/test, which installs Debian's chromium and playwright-core")
    });
    let server = TestServer::start(&repo(), demo_data().to_str().expect("utf-8"), "", &[]).await;
    let shots = tempfile::TempDir::new().expect("temp");
    let screenshot = shots.path().join("report.png");
    let url = format!("{}/reports/weekly-marketing/{WEEK}", server.base);
    let script = repo().join("tests/browser/check.mjs");
    let shot = screenshot.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&node)
            .arg(&script)
            .arg(&url)
            .arg(&shot)
            .output()
    })
    .await
    .expect("task")
    .expect("node runs");
    assert!(
        output.status.success(),
        "browser check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(result["status"], 200);
    assert_eq!(
        result["outside"],
        serde_json::json!([]),
        "requests outside the server"
    );
    assert_eq!(result["errors"], serde_json::json!([]), "console errors");

    // The screenshot is a real page: tall, and far from one colour.
    let file = std::fs::File::open(&screenshot).expect("screenshot");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("png");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("frame");
    assert!(
        info.height > 1500,
        "a full page, not one screen: {}",
        info.height
    );
    let dark = pixels
        .chunks(info.color_type.samples())
        .filter(|p| p[0] < 128)
        .count();
    assert!(dark > 5_000, "the page is blank ({dark} dark pixels)");
    if let Ok(keep) = std::env::var("KPI_KEEP_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).expect("keep screenshot");
    }

    // Every number on the page is the API's number for the same metric and period.
    let values = result["values"].as_array().expect("values");
    assert!(
        values.len() > 100,
        "only {} numbers on the page",
        values.len()
    );
    let mut cache = BTreeMap::new();
    let mut checked = 0;
    for element in values {
        let attributes: BTreeMap<String, String> = element
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let page: Option<f64> = match attributes["value"].as_str() {
            "" => None,
            text => Some(text.parse().expect("a number")),
        };
        let api = api_value(&server, &mut cache, &attributes).await;
        assert!(
            same(page, api),
            "{attributes:?}: page {page:?}, API {api:?}"
        );
        checked += 1;
    }
    assert!(checked > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_answer_304_without_work_and_change_when_a_file_lands() {
    let data = demo_data_copy();
    let server = TestServer::start(&repo(), data.path().to_str().expect("utf-8"), "", &[]).await;
    let url = format!("{}/reports/sales-pipeline/{WEEK}", server.base);
    let first = server.client.get(&url).send().await.expect("request");
    assert_eq!(first.status().as_u16(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_string();
    let body = first.text().await.expect("body");
    assert!(body.contains("data-metric=\"pipeline_created\""));

    let started = std::time::Instant::now();
    let again = server
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"].to_str().expect("etag"), etag);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // The JSON and the PNG share the page's ETag.
    let json = server
        .client
        .get(format!("{url}.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(json.headers()["etag"].to_str().expect("etag"), etag);
    let png_url = format!(
        "{}/charts/sales-pipeline/{WEEK}/pipeline-trend.png",
        server.base
    );
    let image = server.client.get(&png_url).send().await.expect("request");
    assert_eq!(image.headers()["content-type"], "image/png");
    let first_png = image.bytes().await.expect("bytes");
    let second_png = server
        .client
        .get(&png_url)
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(
        first_png, second_png,
        "the same chart twice is the same bytes"
    );

    // A file lands in a table the report reads: new ETag, and the old one gets a full answer.
    land_copy(
        &data.path().join("crm/opportunities"),
        "relanded-copy.parquet",
    );
    server.settle().await;
    let after = server
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(
        after.status().as_u16(),
        200,
        "stale ETag gets the new report"
    );
    assert_ne!(after.headers()["etag"].to_str().expect("etag"), etag);

    // A week of another year, an unknown dashboard, a bad week: clear errors.
    for (path, status) in [
        ("/reports/nope/2026-W44", 404),
        ("/reports/sales-pipeline/2026-W99", 400),
        ("/charts/sales-pipeline/2026-W44/nope.png", 404),
    ] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "{path}");
    }
    // The latest complete week is one redirect away.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = client
        .get(format!("{}/reports/sales-pipeline", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(redirect.status().as_u16(), 303);
    assert!(redirect.headers()["location"]
        .to_str()
        .expect("location")
        .starts_with("/reports/sales-pipeline/20"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_data_for_the_week_marks_its_kpi_unavailable_and_the_rest_renders() {
    let data = demo_data_copy();
    // Email's sends of October and November are gone: week 44 has no email data.
    for file in std::fs::read_dir(data.path().join("email/sends")).expect("dir") {
        let path = file.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        if name.contains("2026-10") || name.contains("2026-11") {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    let server = TestServer::start(&repo(), data.path().to_str().expect("utf-8"), "", &[]).await;
    let response = server
        .client
        .get(format!("{}/reports/weekly-marketing/{WEEK}", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let html = response.text().await.expect("html");
    let unavailable = elements_with(&html, "data-unavailable");
    let names: Vec<&str> = unavailable
        .iter()
        .map(|a| a["data-unavailable"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["email_click_rate"],
        "only the email KPI is unavailable"
    );
    assert!(
        html.contains("Source `email` has data up to 2026-09-30 only"),
        "banner"
    );
    // The other tiles still have values.
    let values = elements_with(&html, "data-value");
    assert!(values.iter().any(|a| a["data-metric"] == "pipeline_created"
        && a["data-period"] == WEEK
        && !a["data-value"].is_empty()));

    // An unreadable file: the table's KPIs say why, the page still renders.
    let sends = data.path().join("email/sends");
    land(
        &sends.join("sends-2026-09-broken.parquet"),
        b"not parquet at all",
    );
    server.settle().await;
    let html = server
        .client
        .get(format!("{}/reports/weekly-marketing/{WEEK}", server.base))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("sends-2026-09-broken.parquet"),
        "the reason names the file"
    );
    assert!(html.contains("id=\"kpi-pipeline_created\""));
}

/// The page for a fixed week of the test data set, byte for byte. Regenerate with
/// `KPI_UPDATE_GOLDEN=1 scripts/test golden` and review the diff.
#[test]
fn the_report_page_matches_the_golden_file() {
    let out = tempfile::TempDir::new().expect("temp");
    let page = out.path().join("report.html");
    let output = kpi(
        &[
            "report",
            "sales-pipeline",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
            "--week",
            WEEK,
            "--out",
            page.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(&page).expect("page");
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "self-contained: found {external}");
    }
    let golden = repo().join("tests/golden/report-sales-pipeline-2026-W44.html");
    if std::env::var_os("KPI_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &html).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&golden)
        .expect("golden file; create it with KPI_UPDATE_GOLDEN=1 scripts/test golden");
    assert!(
        html == expected,
        "the page differs from {}; if intended, regenerate with KPI_UPDATE_GOLDEN=1 scripts/test golden and review the diff",
        golden.display()
    );
}
