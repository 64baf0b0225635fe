//! Snapshots and email end to end: a real SMTP server (aiosmtpd) receives the report, Python's
//! email package parses it, Chromium renders its HTML, and the send log keeps it to one copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

const WEEK: &str = "2026-W44";

/// An aiosmtpd server on a free port of 127.0.0.1, saving messages into a folder.
pub(crate) struct Smtp {
    child: Child,
    pub(crate) port: u16,
    inbox: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtp {
    pub(crate) fn start() -> Self {
        Self::start_with("none")
    }

    /// Starts the server in `mode`: `none`, `starttls` or `tls` (a CA made now, in `ca.pem`).
    fn start_with(mode: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let inbox = tempfile::TempDir::new().expect("temp");
        let mut child = Command::new(python())
            .arg(repo().join("tests/smtp_server.py"))
            .arg(inbox.path())
            .arg(port.to_string())
            .arg(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python starts (scripts/test installs aiosmtpd)");
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        assert_eq!(
            line.trim(),
            "ready",
            "aiosmtpd did not start (is it installed? run scripts/test)"
        );
        Self { child, port, inbox }
    }

    /// The report emails received (alert emails, which servers also send for the demo
    /// dashboards' alerts, left out).
    pub(crate) fn messages(&self) -> Vec<PathBuf> {
        self.all_messages()
            .into_iter()
            .filter(|m| {
                std::fs::read_to_string(m).is_ok_and(|t| !t.contains("Subject: kpi alert:"))
            })
            .collect()
    }

    /// Every message received.
    pub(crate) fn all_messages(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.inbox.path())
            .expect("inbox")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
    }
}

/// Environment of a `kpi email` run against the test SMTP server and private stores.
pub(crate) fn env(smtp: &Smtp, state: &Path) -> Vec<(String, String)> {
    vec![
        ("KPI_SMTP_HOST".into(), "127.0.0.1".into()),
        ("KPI_SMTP_PORT".into(), smtp.port.to_string()),
        ("KPI_SMTP_TLS".into(), "none".into()),
        (
            "KPI_EMAIL_FROM".into(),
            "Reports <reports@acme.example>".into(),
        ),
        (
            "KPI_SNAPSHOTS".into(),
            state.join("snapshots").display().to_string(),
        ),
        (
            "KPI_SEND_LOG".into(),
            state.join("sends").display().to_string(),
        ),
        ("KPI_PUBLIC_URL".into(), "https://kpi.acme.example".into()),
    ]
}

fn run(args: &[&str], data: &Path, env: &[(String, String)]) -> std::process::Output {
    let project = repo();
    let mut all = vec![
        args[0],
        "--project",
        project.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
    ];
    all.extend(&args[1..]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    kpi(&all, &env)
}

fn parse(message: &Path) -> serde_json::Value {
    let output = Command::new(python())
        .arg(repo().join("tests/mime_check.py"))
        .arg(message)
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

fn snapshot_json(state: &Path, id: &str) -> serde_json::Value {
    let path = state
        .join("snapshots/weekly-marketing")
        .join(WEEK)
        .join(id)
        .join("snapshot.json");
    serde_json::from_slice(&std::fs::read(&path).expect("snapshot.json")).expect("json")
}

fn id_from(stderr: &str) -> String {
    let at = stderr
        .find("snapshot ")
        .expect("a snapshot id in the output")
        + "snapshot ".len();
    stderr[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect()
}

fn format_like_kpi(unit: &str, currency: Option<&str>, value: f64) -> String {
    use kpi::defs::Choice;
    let unit = kpi::defs::Unit::from_name(unit).expect("a unit kpi knows");
    kpi::metrics::format_display(unit, currency, Some(value), false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_email_arrives_once_with_a_correct_mime_tree_and_the_snapshot_numbers() {
    let smtp = Smtp::start();
    let state = tempfile::TempDir::new().expect("temp");
    let env = env(&smtp, state.path());
    let data = demo_data();
    let eml = state.path().join("report.eml");
    let started = std::time::Instant::now();
    let output = run(
        &[
            "email",
            "weekly-marketing",
            "--week",
            WEEK,
            "--to",
            "cmo@acme.example,growth@acme.example",
            "--eml",
            eml.to_str().expect("utf-8"),
        ],
        data,
        &env,
    );
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    eprintln!(
        "kpi email took {:.1} s: {stderr}",
        started.elapsed().as_secs_f64()
    );
    let received = smtp.messages();
    assert_eq!(received.len(), 1, "one message received");
    let rcpt = std::fs::read_to_string(received[0].with_extension("rcpt")).expect("rcpt");
    assert_eq!(
        rcpt.lines().collect::<Vec<_>>(),
        vec!["cmo@acme.example", "growth@acme.example"]
    );

    let mail = parse(&received[0]);
    assert_eq!(
        mail["subject"],
        "Weekly marketing — 2026-W44 (Oct 26–Nov 1)"
    );
    // multipart/mixed [ multipart/alternative [ text/plain, multipart/related [ html, png… ] ], csv ]
    let tree = &mail["tree"];
    assert_eq!(tree["type"], "multipart/mixed");
    let alternative = &tree["parts"][0];
    assert_eq!(alternative["type"], "multipart/alternative");
    assert_eq!(alternative["parts"][0]["type"], "text/plain");
    let related = &alternative["parts"][1];
    assert_eq!(related["type"], "multipart/related");
    assert_eq!(related["parts"][0]["type"], "text/html");
    assert!(related["parts"].as_array().expect("parts")[1..]
        .iter()
        .all(|p| p["type"] == "image/png"));
    assert_eq!(tree["parts"][1]["type"], "text/csv");
    assert_eq!(tree["parts"][1]["disposition"], "attachment");

    // Every cid: in the HTML resolves to a PNG part that decodes.
    let html = mail["html"].as_str().expect("html");
    let cids: Vec<&str> = html
        .split("cid:")
        .skip(1)
        .map(|rest| rest.split('"').next().expect("cid"))
        .collect();
    assert_eq!(cids.len(), 4, "the dashboard's four charts");
    for cid in &cids {
        let part = &mail["inline"][*cid];
        assert_eq!(part["png"], true, "cid {cid} is a decodable PNG: {part}");
        assert_eq!(part["size"], "640x300");
    }
    assert!(!html.contains("<script"), "no script");
    for external in ["src=\"http", "url(http"] {
        assert!(!html.contains(external), "no external image: {external}");
    }

    // The numbers in the text, the HTML and the CSV are the snapshot's.
    let id = id_from(&stderr);
    let snapshot = snapshot_json(state.path(), &id);
    let message_id = mail["message_id"].as_str().expect("message id");
    assert!(
        message_id.starts_with("<kpi.weekly-marketing.2026-W44."),
        "{message_id}"
    );
    let text = mail["text"].as_str().expect("text");
    let csv = mail["csv"].as_str().expect("csv");
    let csv_values: BTreeMap<String, String> = csv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("tile,"))
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[1].to_string(), cells[5].to_string())
        })
        .collect();
    let report = &snapshot["report"];
    let tiles = report["primary"].as_array().expect("primary").iter().chain(
        report["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .flat_map(|s| s["tiles"].as_array().expect("tiles").iter()),
    );
    let mut checked = 0;
    for tile in tiles {
        let metric = tile["metric"].as_str().expect("metric");
        let label = tile["label"].as_str().expect("label");
        let unit = tile["unit"].as_str().expect("unit");
        let Some(value) = tile["value"].as_f64() else {
            continue;
        };
        assert!(
            text.contains(&format!(
                "{label}: {}",
                format_like_kpi(unit, tile["currency"].as_str(), value)
            )),
            "text has {label}: {text}"
        );
        assert!(
            html.contains(&format!(
                "data-metric=\"{metric}\" data-period=\"{WEEK}\" data-value=\"{value}\""
            )),
            "html has {metric} = {value}"
        );
        let in_csv: f64 = csv_values[metric].parse().expect("number");
        assert_eq!(in_csv, value, "csv {metric}");
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} numbers checked");
    assert!(text.contains(&format!(
        "https://kpi.acme.example/snapshots/weekly-marketing/{WEEK}/{id}"
    )));
    assert!(html.contains(&format!(
        "https://kpi.acme.example/reports/weekly-marketing/{WEEK}"
    )));

    // The .eml written is the message sent (same Message-ID).
    let written = parse(&eml);
    assert_eq!(written["message_id"], mail["message_id"]);

    // The same send again: nothing new reaches the server.
    let again = run(
        &[
            "email",
            "weekly-marketing",
            "--week",
            WEEK,
            "--to",
            "growth@acme.example,cmo@acme.example",
        ],
        data,
        &env,
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("already sent"), "{stderr}");
    assert_eq!(smtp.messages().len(), 1, "not sent twice");

    // Interrupted after the SMTP server accepted and before the log was updated, then run
    // again: the server has the message once. The record stays `sending`; the rerun refuses
    // and says how to resend under the same Message-ID.
    let mut crashing = env.clone();
    crashing.push(("KPI_TEST_EXIT_AFTER_SMTP_ACCEPT".into(), "1".into()));
    let crashed = run(
        &[
            "email",
            "weekly-marketing",
            "--week",
            WEEK,
            "--to",
            "board@acme.example",
        ],
        data,
        &crashing,
    );
    assert_eq!(
        crashed.status.code(),
        Some(9),
        "the test hook stopped the process"
    );
    assert_eq!(smtp.messages().len(), 2);
    let rerun = run(
        &[
            "email",
            "weekly-marketing",
            "--week",
            WEEK,
            "--to",
            "board@acme.example",
        ],
        data,
        &env,
    );
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("recorded as in progress") && stderr.contains("--resend"),
        "{stderr}"
    );
    assert_eq!(
        smtp.messages().len(),
        2,
        "the interrupted send is not repeated"
    );
    let resent = run(
        &[
            "email",
            "weekly-marketing",
            "--week",
            WEEK,
            "--to",
            "board@acme.example",
            "--resend",
        ],
        data,
        &env,
    );
    assert!(resent.status.success());
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        parse(&messages[1])["message_id"],
        parse(&messages[2])["message_id"],
        "a resend carries the same Message-ID, so receivers can drop the copy"
    );

    // A failing SMTP server: retried with backoff, then the failure is in the send log.
    let mut broken = env.clone();
    broken.retain(|(k, _)| k != "KPI_SMTP_PORT");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    broken.push(("KPI_SMTP_PORT".into(), closed.to_string()));
    let failed = run(
        &[
            "email",
            "weekly-marketing",
            "--week",
            WEEK,
            "--to",
            "ops@acme.example",
        ],
        data,
        &broken,
    );
    assert_eq!(
        failed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    let log: Vec<serde_json::Value> = std::fs::read_dir(state.path().join("sends"))
        .expect("log")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).expect("read")).expect("json"))
        .collect();
    let failure = log
        .iter()
        .find(|r| r["recipients"] == serde_json::json!(["ops@acme.example"]))
        .expect("the failed send is logged");
    assert_eq!(failure["status"], "failed");
    assert_eq!(failure["attempts"], 4, "first try and three retries");

    // The email's HTML in a real browser, with cid: images as a mail client shows them.
    if let Ok(node) = std::env::var("KPI_TEST_NODE") {
        let mut rendered = html.to_string();
        for cid in &cids {
            let data = mail["inline"][*cid]["base64"].as_str().expect("b64");
            rendered = rendered.replace(
                &format!("cid:{cid}"),
                &format!("data:image/png;base64,{data}"),
            );
        }
        let page = state.path().join("email.html");
        std::fs::write(&page, rendered).expect("write");
        let shot = state.path().join("email.png");
        let output = Command::new(node)
            .arg(repo().join("tests/browser/check.mjs"))
            .arg(format!("file://{}", page.display()))
            .arg(&shot)
            .output()
            .expect("node");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(
            result["outside"],
            serde_json::json!([]),
            "no external request"
        );
        assert_eq!(result["errors"], serde_json::json!([]));
        let mut reader = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&shot).expect("shot"),
        ))
        .read_info()
        .expect("png");
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).expect("frame");
        let dark = pixels
            .chunks(info.color_type.samples())
            .filter(|p| p[0] < 128)
            .count();
        assert!(dark > 5_000, "the email renders ({dark} dark pixels)");
        if let Ok(keep) = std::env::var("KPI_KEEP_EMAIL_SCREENSHOT") {
            std::fs::copy(&shot, keep).expect("keep");
        }
    } else {
        panic!("KPI_TEST_NODE is not set: run the tests with scripts/test");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_never_changes_and_its_page_shows_what_the_live_report_now_says() {
    let data = demo_data_copy();
    let state = tempfile::TempDir::new().expect("temp");
    let snapshots = state.path().join("snapshots");
    let envs = [("KPI_SNAPSHOTS", snapshots.to_str().expect("utf-8"))];
    let server = TestServer::start(&repo(), data.path().to_str().expect("utf-8"), "", &envs).await;
    let take = || async {
        let response = server
            .client
            .post(format!(
                "{}/api/v1/snapshots/weekly-marketing/{WEEK}",
                server.base
            ))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json::<serde_json::Value>().await.expect("json"),
        )
    };
    let (status, first) = take().await;
    assert_eq!(status, 201, "{first}");
    let (status, same) = take().await;
    assert_eq!(status, 200, "same inputs: the existing snapshot");
    assert_eq!(same["id"], first["id"]);
    let id = first["id"].as_str().expect("id").to_string();
    let folder = snapshots.join("weekly-marketing").join(WEEK).join(&id);
    let frozen_files: BTreeMap<PathBuf, Vec<u8>> = walk(&folder)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
        .collect();
    assert!(frozen_files
        .keys()
        .any(|p| p.ends_with("charts/funnel.png")));

    let page = |path: String| {
        let client = server.client.clone();
        let base = server.base.clone();
        async move {
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("request")
                .text()
                .await
                .expect("text")
        }
    };
    let before = page(format!("/snapshots/weekly-marketing/{WEEK}/{id}")).await;
    assert!(
        before.contains("data-live=\"same\""),
        "live equals the snapshot at first"
    );

    // A file lands: the live report changes, the snapshot does not.
    land_copy(
        &data.path().join("crm/opportunities"),
        "late-arrivals.parquet",
    );
    server.settle().await;
    let after = page(format!("/snapshots/weekly-marketing/{WEEK}/{id}")).await;
    assert!(
        after.contains("data-live=\"different\""),
        "the banner says the live numbers differ"
    );
    let changed = elements_with(&after, "data-changed");
    assert!(
        changed
            .iter()
            .any(|a| a["data-changed"] == "pipeline_created"),
        "pipeline_created is listed: {changed:?}"
    );
    assert!(after.contains("<td>data</td>"), "and why: the data changed");
    for (path, bytes) in &frozen_files {
        assert_eq!(
            &std::fs::read(path).expect("read"),
            bytes,
            "{} changed",
            path.display()
        );
    }
    // The frozen page inside still has the old numbers.
    let frozen_values = elements_with(&before, "data-value");
    let still = elements_with(&after, "data-value");
    let pick = |values: &Vec<BTreeMap<String, String>>| {
        values
            .iter()
            .find(|a| a["data-metric"] == "pipeline_created" && a["data-period"] == WEEK)
            .map(|a| a["data-value"].clone())
    };
    assert_eq!(pick(&frozen_values), pick(&still));

    // A new snapshot for the changed data: new id, pointing back; the old page links to it.
    let (status, second) = take().await;
    assert_eq!(status, 201);
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["previous"], first["id"]);
    let old = page(format!("/snapshots/weekly-marketing/{WEEK}/{id}")).await;
    assert!(old.contains(&format!(
        "data-newer=\"{}\"",
        second["id"].as_str().expect("id")
    )));
    let latest = page(format!("/snapshots/weekly-marketing/{WEEK}")).await;
    assert!(latest.contains(&format!(
        "data-snapshot=\"{}\"",
        second["id"].as_str().expect("id")
    )));
}

fn walk(folder: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(folder)
        .expect("dir")
        .filter_map(|e| e.ok())
    {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_with_a_due_schedule_send_the_week_once() {
    let smtp = Smtp::start();
    let state = tempfile::TempDir::new().expect("temp");
    let project = project_copy();
    let dashboard = project.path().join("dashboards/sales-pipeline.toml");
    let text = std::fs::read_to_string(&dashboard).expect("read");
    std::fs::write(
        &dashboard,
        format!(
            "{text}\n[email]\nto = [\"sales-leads@acme.example\"]\nschedule = \"monday 08:00\"\n"
        ),
    )
    .expect("write");
    let env = env(&smtp, state.path());
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let data = demo_data().to_str().expect("utf-8");
    let first = TestServer::start(project.path(), data, "schedule_interval_ms = 200", &envs).await;
    let second = TestServer::start(project.path(), data, "schedule_interval_ms = 200", &envs).await;
    let delivered = eventually(120, || async { !smtp.messages().is_empty() }).await;
    assert!(delivered, "the due week was sent");
    // Several more rounds of both schedulers: still one message.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(smtp.messages().len(), 1, "two servers, one email");
    let sends = first
        .client
        .get(format!("{}/sends", second.base))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("html");
    assert!(sends.contains("data-status=\"sent\""), "{sends}");
    assert!(sends.contains("sales-leads@acme.example"));
}

/// STARTTLS and implicit TLS against a real TLS SMTP server whose certificate is signed by a
/// CA made for the test: refused without `email.ca_file` (the error names the host and the
/// setting), delivered with it.
#[test]
fn tls_relays_with_a_private_ca() {
    let data = demo_data();
    for mode in ["starttls", "tls"] {
        let smtp = Smtp::start_with(mode);
        let state = tempfile::TempDir::new().expect("temp");
        let mut environment = env(&smtp, state.path());
        for (key, value) in environment.iter_mut() {
            match key.as_str() {
                "KPI_SMTP_TLS" => *value = mode.into(),
                "KPI_SMTP_HOST" => *value = "localhost".into(),
                _ => {}
            }
        }
        let args = [
            "email",
            "sales-pipeline",
            "--week",
            WEEK,
            "--to",
            "cfo@acme.example",
        ];
        let refused = run(&args, data, &environment);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success(),
            "{mode}: sent without trusting the CA"
        );
        assert!(
            stderr.contains(&format!("TLS with localhost:{}", smtp.port)),
            "{mode}: {stderr}"
        );
        assert!(stderr.contains("email.ca_file"), "{mode}: {stderr}");
        assert!(smtp.messages().is_empty(), "{mode}: nothing delivered");

        let ca = smtp.inbox.path().join("ca.pem");
        environment.push(("KPI_SMTP_CA_FILE".into(), ca.display().to_string()));
        // The refused send is recorded as failed, so this run claims it again and sends.
        let sent = run(&args, data, &environment);
        assert!(
            sent.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
        assert_eq!(smtp.messages().len(), 1, "{mode}: one message");
        let mail = parse(&smtp.messages()[0]);
        assert!(
            mail["subject"].as_str().unwrap_or_default().contains(WEEK),
            "{mode}: {mail}"
        );
    }
}

/// With a signing key, the email's links are signed: the live report's and the snapshot's
/// verify for their pages until the snapshot's time plus `email.link_lifetime`, and two builds
/// of the same snapshot give the same links.
#[test]
fn links_in_emails_are_signed_when_a_key_is_set() {
    let smtp = Smtp::start();
    let state = tempfile::TempDir::new().expect("temp");
    let mut env = env(&smtp, state.path());
    env.push(("KPI_SIGNING_KEY".into(), "email-link-key".into()));
    let data = demo_data();
    let build = |name: &str| {
        let eml = state.path().join(name);
        let output = run(
            &[
                "email",
                "sales-pipeline",
                "--week",
                WEEK,
                "--to",
                "cfo@acme.example",
                "--dry-run",
                "--eml",
                eml.to_str().expect("utf-8"),
            ],
            data,
            &env,
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        parse(&eml)["text"].as_str().expect("text").to_string()
    };
    let text = build("first.eml");
    assert_eq!(
        text,
        build("second.eml"),
        "the same snapshot gives the same links"
    );
    let link = |prefix: &str| -> String {
        let at = text
            .find(prefix)
            .unwrap_or_else(|| panic!("{prefix} in {text}"));
        text[at..]
            .split_whitespace()
            .next()
            .expect("link")
            .to_string()
    };
    let signer = kpi::links::Signer::new(kpi::config::Secret::new("email-link-key"), Vec::new());
    for prefix in [
        "https://kpi.acme.example/reports/sales-pipeline/",
        "https://kpi.acme.example/snapshots/sales-pipeline/",
    ] {
        let url = link(prefix);
        let (path, query) = url
            .trim_start_matches("https://kpi.acme.example")
            .split_once('?')
            .expect("a signed link has a query");
        let scope = kpi::links::Scope::of_path(path).expect("scope");
        let (mut exp, mut sig) = (None, None);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "exp" => exp = Some(value.to_string()),
                "sig" => sig = Some(value.to_string()),
                _ => {}
            }
        }
        assert_eq!(
            signer.verify(&scope, exp.as_deref(), sig.as_deref(), chrono::Utc::now()),
            Ok(()),
            "{url}"
        );
    }
}
