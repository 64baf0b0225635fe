//! Hostile input: random and hostile values in every parameter of every route that takes one
//! (path segments, query parameters, bodies), against the real server over HTTP. Nothing may answer 5xx (but 503, which says "try later") and no
//! connection may drop.

use crate::support::*;

/// SplitMix64, so a failure reproduces from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> &'a str {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

fn hostile_values() -> Vec<String> {
    let mut values: Vec<String> = [
        "",
        "0",
        "-1",
        "1e309",
        "NaN",
        "inf",
        "9223372036854775808",
        "-9223372036854775809",
        "200000000000d",
        "100000000000d",
        "36501d",
        "-5d",
        "0d",
        "1s",
        "30d",
        "7d",
        "12h",
        "2026-W99",
        "2026-W00",
        "0000-W01",
        "99999-W01",
        "-2026-W01",
        "262143-W01",
        "2026-W44",
        "2026-W45",
        "2025-W44",
        "2026-13",
        "2026-Q5",
        "2026-Q4",
        "2026-02-30",
        "2026-11-02",
        "2026-11",
        "day",
        "week",
        "month",
        "quarter",
        "year",
        "previous",
        "year_ago",
        "trailing_4",
        "previous,year_ago,trailing_4",
        "linear",
        "markov",
        "time_decay",
        "nonsense",
        "csv",
        "json",
        "channel",
        "channel=google",
        "region=",
        "=",
        ",,,",
        "../../etc/passwd",
        "..%2F..%2Fetc",
        "%00",
        "\u{0}",
        "'; DROP TABLE x; --",
        "<script>alert(1)</script>",
        "ü∆😀",
        "SELECT * FROM crm.contacts",
        "SELECT 1/0",
        "COPY x TO 'y'",
        "=HYPERLINK(\"http://example.invalid\")",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    values.push("a".repeat(10_000));
    values.push("9".repeat(400));
    values
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_every_parameter_never_crash_the_server() {
    let server = TestServer::start(&repo(), demo_data().to_str().expect("utf-8"), "", &[]).await;
    let mut values = hostile_values();
    values.extend(
        [
            "mqls",
            "pipeline_created",
            "attributed_pipeline",
            "spend",
            "sales-pipeline",
            "weekly-marketing",
            "pipeline-trend.svg",
            "pipeline-trend.png",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let seed = 20_261_203;
    let mut rng = Rng(seed);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client");
    let series_keys = [
        "from", "to", "grain", "by", "filter", "compare", "format", "model", "lookback", "unknown",
    ];
    let mut failures = Vec::new();
    let requests = 400;
    for index in 0..requests {
        let v = |rng: &mut Rng| encode(rng.pick(&values));
        let (method, path, body) = match index % 15 {
            0 | 1 => {
                let mut query = String::new();
                for key in series_keys {
                    if rng.next() % 2 == 0 {
                        query.push_str(&format!("{key}={}&", v(&mut rng)));
                    }
                }
                (
                    "GET",
                    format!("/api/v1/metrics/{}?{query}", v(&mut rng)),
                    None,
                )
            }
            2 => (
                "GET",
                format!(
                    "/attribution?week={}&lookback={}&metric={}",
                    v(&mut rng),
                    v(&mut rng),
                    v(&mut rng)
                ),
                None,
            ),
            3 => (
                "GET",
                format!("/reports/{}/{}", v(&mut rng), v(&mut rng)),
                None,
            ),
            4 => (
                "GET",
                format!("/reports/{}/{}.csv", v(&mut rng), v(&mut rng)),
                None,
            ),
            5 => (
                "GET",
                format!("/charts/{}/{}/{}", v(&mut rng), v(&mut rng), v(&mut rng)),
                None,
            ),
            6 => (
                "GET",
                format!("/snapshots/{}/{}/{}", v(&mut rng), v(&mut rng), v(&mut rng)),
                None,
            ),
            7 => ("GET", format!("/definitions/{}", v(&mut rng)), None),
            8 => (
                "POST",
                "/api/v1/sql".to_string(),
                Some(serde_json::json!({ "sql": rng.pick(&values) }).to_string()),
            ),
            9 => (
                "POST",
                format!("/api/v1/snapshots/{}/{}", v(&mut rng), encode("2019-W99")),
                None,
            ),
            10 => (
                "POST",
                "/api/v1/sql".to_string(),
                Some(rng.pick(&values).to_string()),
            ),
            11 => ("GET", format!("/reports/{}", v(&mut rng)), None),
            12 => (
                "GET",
                format!("/reports/{}/{}.json", v(&mut rng), v(&mut rng)),
                None,
            ),
            13 => (
                "GET",
                format!("/snapshots/{}/{}", v(&mut rng), v(&mut rng)),
                None,
            ),
            _ => (
                "GET",
                format!(
                    "/snapshots/{}/{}/{}/charts/{}",
                    v(&mut rng),
                    v(&mut rng),
                    v(&mut rng),
                    v(&mut rng)
                ),
                None,
            ),
        };
        let url = format!("{}{path}", server.base);
        let request = match method {
            "POST" => client.post(&url).body(body.unwrap_or_default()),
            _ => client.get(&url),
        };
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                if (500..600).contains(&status) && status != 503 {
                    let text = response.text().await.unwrap_or_default();
                    failures.push(format!("{method} {path}: {status} {text}"));
                }
            }
            Err(error) => failures.push(format!("{method} {path}: connection failed: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed}, {} of {requests} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(server.get_json("/healthz").await["status"], "ok");
}

#[test]
fn csv_cells_that_would_run_as_formulas_are_neutralised() {
    let output = kpi(
        &[
            "query",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
            "--format",
            "csv",
            "--sql",
            "SELECT '=HYPERLINK(\"http://example.invalid\")' AS campaign, '@SUM(A1)' AS other, -12.5 AS spend, '-3' AS text_number",
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = String::from_utf8(output.stdout).expect("utf-8");
    let row = csv.lines().nth(1).expect("a row");
    assert_eq!(
        row, "\"'=HYPERLINK(\"\"http://example.invalid\"\")\",'@SUM(A1),-12.5,-3",
        "{csv}"
    );
}
