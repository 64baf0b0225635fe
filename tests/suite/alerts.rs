//! Alerts end to end: a real webhook receiver (an HTTP server on 127.0.0.1) and the real SMTP
//! server get exactly one delivery per firing alert and week, across a 500 answer, a rerun and
//! two processes at once; an alert whose condition does not hold never posts; the signature
//! verifies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::email::{env, Smtp};
use crate::support::*;

const WEEK: &str = "2026-W44";
const KEY: &str = "webhook-signing-secret";

/// Each request: its signature header, body and the status answered.
type Requests = Arc<Mutex<Vec<(Option<String>, Vec<u8>, u16)>>>;

/// A webhook receiver: records every request's signature header and body; answers 500 to the
/// first `failures` requests, then 200.
struct Receiver {
    port: u16,
    requests: Requests,
}

impl Receiver {
    fn start(failures: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests: Requests = Arc::default();
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                let mut signature = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("x-kpi-signature:") {
                        signature = Some(line["x-kpi-signature:".len()..].trim().to_string());
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let mut all = seen.lock().expect("lock");
                let status = if all.len() < failures { 500 } else { 200 };
                all.push((signature, body, status));
                drop(all);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Self { port, requests }
    }

    fn requests(&self) -> Vec<(Option<String>, serde_json::Value, u16)> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .map(|(s, b, status)| {
                (
                    s.clone(),
                    serde_json::from_slice(b).expect("json body"),
                    *status,
                )
            })
            .collect()
    }

    fn delivered(&self) -> usize {
        self.requests().iter().filter(|r| r.2 == 200).count()
    }
}

/// A project with an `alerting` dashboard whose alerts post to `port` or mail.
fn project(port: u16) -> tempfile::TempDir {
    let project = project_copy();
    std::fs::write(
        project.path().join("dashboards/alerting.toml"),
        format!(
            r#"title = "Alerting"
primary = ["mqls"]

[[alert]]
name = "mqls-present"
metric = "mqls"
above = 0
webhook = "http://127.0.0.1:{port}/hook"

[[alert]]
name = "mqls-impossible"
metric = "mqls"
above = 1000000000
webhook = "http://127.0.0.1:{port}/hook"

[[alert]]
name = "sqls-by-email"
metric = "sqls"
above = -1
to = ["ops@acme.example"]
"#
        ),
    )
    .expect("dashboard");
    project
}

fn alerts(project: &Path, smtp: &Smtp, log: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kpi"));
    command
        .args([
            "alerts",
            "alerting",
            "--week",
            WEEK,
            "--format",
            "json",
            "--project",
        ])
        .arg(project)
        .arg("--data")
        .arg(demo_data())
        .env_remove("KPI_DATA")
        .env("KPI_LOG", "warn")
        .env("KPI_ALERT_LOG", log)
        .env("KPI_ALERT_SIGNING_KEY", KEY);
    for (key, value) in env(smtp, log) {
        command.env(key, value);
    }
    command
}

fn alert_emails(smtp: &Smtp) -> usize {
    smtp.all_messages()
        .iter()
        .filter(|m| {
            std::fs::read_to_string(m).is_ok_and(|t| t.contains("kpi alert: sqls-by-email"))
        })
        .count()
}

#[test]
fn a_firing_alert_is_delivered_once_across_failures_reruns_and_processes() {
    let receiver = Receiver::start(1);
    let smtp = Smtp::start();
    let project = project(receiver.port);
    let state = tempfile::TempDir::new().expect("temp");

    // First run: the receiver answers 500 once; the retry delivers.
    let output = alerts(project.path(), &smtp, state.path())
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcomes: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let states: Vec<(&str, &str, &str)> = outcomes
        .as_array()
        .expect("outcomes")
        .iter()
        .map(|o| {
            (
                o["record"]["alert"].as_str().expect("alert"),
                o["record"]["state"].as_str().expect("state"),
                o["delivery"].as_str().expect("delivery"),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("mqls-present", "firing", "delivered"),
            ("mqls-impossible", "ok", ""),
            ("sqls-by-email", "firing", "delivered"),
        ]
    );
    let requests = receiver.requests();
    assert_eq!(
        requests.iter().map(|r| r.2).collect::<Vec<_>>(),
        vec![500, 200]
    );
    for (signature, body, _) in &requests {
        assert_eq!(
            body["alert"], "mqls-present",
            "the alert that does not hold never posts"
        );
        assert_eq!(body["week"], WEEK);
        assert_eq!(body["state"], "firing");
        assert_eq!(body["dashboard"], "alerting");
        assert!(body["value"].as_f64().expect("value") > 0.0);
        assert!(body["text"]
            .as_str()
            .expect("slack text")
            .contains("mqls-present"));
        assert_eq!(
            body["report_url"],
            format!("https://kpi.acme.example/reports/alerting/{WEEK}")
        );
        let bytes = serde_json::to_vec(body).expect("bytes");
        let expected = format!("sha256={}", kpi::alerts::sign(KEY, &bytes));
        assert_eq!(
            signature.as_deref(),
            Some(expected.as_str()),
            "signature verifies"
        );
    }
    assert_eq!(
        alert_emails(&smtp),
        1,
        "the email alert reached the SMTP server once"
    );

    // A rerun (a restart, for the CLI) delivers nothing again.
    let again = alerts(project.path(), &smtp, state.path())
        .output()
        .expect("runs");
    assert!(again.status.success());
    let outcomes: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(outcomes[0]["delivery"], "already delivered");
    assert_eq!(
        outcomes[0]["record"]["history"]
            .as_array()
            .expect("history")
            .len(),
        2
    );
    assert_eq!(receiver.delivered(), 1);
    assert_eq!(alert_emails(&smtp), 1);

    // Two processes at once on a fresh log: exactly one more delivery of each.
    let fresh = tempfile::TempDir::new().expect("temp");
    let first = alerts(project.path(), &smtp, fresh.path())
        .spawn()
        .expect("spawn");
    let second = alerts(project.path(), &smtp, fresh.path())
        .spawn()
        .expect("spawn");
    for child in [first, second] {
        assert!(child.wait_with_output().expect("waits").status.success());
    }
    assert_eq!(
        receiver.delivered(),
        2,
        "one delivery per log, whatever the processes"
    );
    assert_eq!(alert_emails(&smtp), 2);
}

#[test]
fn a_delivery_that_keeps_failing_is_recorded_and_retried_by_the_next_evaluation() {
    // Fails the first run's 2 attempts (retries = 1), then accepts.
    let receiver = Receiver::start(2);
    let smtp = Smtp::start();
    let project = project(receiver.port);
    std::fs::write(
        project.path().join("kpi.toml"),
        std::fs::read_to_string(repo().join("kpi.toml")).expect("kpi.toml")
            + "\n[alerts]\nretries = 1\n",
    )
    .expect("kpi.toml");
    let state = tempfile::TempDir::new().expect("temp");
    let output = alerts(project.path(), &smtp, state.path())
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed delivery fails the run"
    );
    let outcomes: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert!(outcomes[0]["delivery"]
        .as_str()
        .expect("delivery")
        .starts_with("failed: webhook"));
    assert_eq!(outcomes[0]["record"]["delivery"]["status"], "failed");
    let again = alerts(project.path(), &smtp, state.path())
        .output()
        .expect("runs");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let outcomes: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(outcomes[0]["delivery"], "delivered");
    assert_eq!(receiver.delivered(), 1);

    // A snoozed alert is judged and recorded, not delivered.
    let fresh = tempfile::TempDir::new().expect("temp");
    let snooze = kpi(
        &[
            "alerts",
            "snooze",
            "mqls-present",
            "--until",
            "2099-01-01",
            "--project",
            project.path().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
        ],
        &[("KPI_ALERT_LOG", fresh.path().to_str().expect("utf-8"))],
    );
    assert!(
        snooze.status.success(),
        "{}",
        String::from_utf8_lossy(&snooze.stderr)
    );
    let snoozed = alerts(project.path(), &smtp, fresh.path())
        .output()
        .expect("runs");
    let outcomes: serde_json::Value = serde_json::from_slice(&snoozed.stdout).expect("json");
    assert_eq!(outcomes[0]["record"]["state"], "firing");
    assert_eq!(outcomes[0]["delivery"], "snoozed");
    assert_eq!(receiver.delivered(), 1, "nothing delivered while snoozed");
    let unknown = kpi(
        &[
            "alerts",
            "snooze",
            "nope",
            "--until",
            "2099-01-01",
            "--project",
            project.path().to_str().expect("utf-8"),
            "--data",
            demo_data().to_str().expect("utf-8"),
        ],
        &[("KPI_ALERT_LOG", state.path().to_str().expect("utf-8"))],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no alert named `nope`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_judge_alerts_when_data_lands_and_deliver_once_between_them() {
    let receiver = Receiver::start(0);
    let project = project_copy();
    // The latest complete week by today's clock is past the test data's end: no MQLs, so a
    // `no_data` alert fires and a `below` alert has nothing to judge.
    std::fs::write(
        project.path().join("dashboards/alerting.toml"),
        format!(
            "title = \"Alerting\"\nprimary = [\"mqls\"]\n\n[[alert]]\nname = \"mqls-missing\"\nmetric = \"mqls\"\nno_data = true\nwebhook = \"http://127.0.0.1:{}/hook\"\n\n[[alert]]\nname = \"mqls-low\"\nmetric = \"mqls\"\nbelow = 5\nwebhook = \"http://127.0.0.1:{}/hook\"\n",
            receiver.port, receiver.port
        ),
    )
    .expect("dashboard");
    let data = demo_data_copy();
    let state = tempfile::TempDir::new().expect("temp");
    let log = state.path().to_str().expect("utf-8").to_string();
    let envs = [
        ("KPI_ALERT_LOG", log.as_str()),
        ("KPI_ALERT_SIGNING_KEY", KEY),
    ];
    let data_arg = data.path().to_str().expect("utf-8");
    let first = TestServer::start(
        project.path(),
        data_arg,
        "schedule_interval_ms = 200",
        &envs,
    )
    .await;
    let second = TestServer::start(
        project.path(),
        data_arg,
        "schedule_interval_ms = 200",
        &envs,
    )
    .await;
    assert!(
        eventually(60, || async { receiver.delivered() >= 1 }).await,
        "the firing alert was delivered"
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(receiver.delivered(), 1, "two servers, one delivery");
    let requests = receiver.requests();
    assert_eq!(requests[0].1["alert"], "mqls-missing");

    // The API and the page show every alert with its state.
    let alerts = first.get_json("/api/v1/alerts").await;
    let missing = alerts
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["name"] == "mqls-missing")
        .expect("listed");
    assert_eq!(missing["history"][0]["state"], "firing");
    assert_eq!(missing["history"][0]["delivery"]["status"], "delivered");
    assert_eq!(missing["webhook"], true);
    assert!(
        !alerts.to_string().contains("/hook"),
        "webhook URLs are never shown"
    );
    let low = alerts
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["name"] == "mqls-low")
        .expect("listed");
    assert_eq!(low["history"][0]["state"], "ok");
    let page = second
        .client
        .get(format!("{}/alerts", second.base))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains("data-alert=\"mqls-missing\" data-state=\"firing\""),
        "{page}"
    );

    // New data lands: the servers judge again (the history grows), and deliver nothing new.
    let before = missing["history"][0]["history"]
        .as_array()
        .expect("history")
        .len();
    let folder = data.path().join("crm/lifecycle_changes");
    let file = std::fs::read_dir(&folder)
        .expect("folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("a file");
    land(
        &folder.join("zz-landed-again.parquet"),
        &std::fs::read(file).expect("read"),
    );
    let judged_again = eventually(60, || async {
        let alerts = first.get_json("/api/v1/alerts").await;
        alerts
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == "mqls-missing")
            .and_then(|a| a["history"][0]["history"].as_array().map(Vec::len))
            .is_some_and(|n| n > before)
    })
    .await;
    assert!(
        judged_again,
        "a landed file makes the servers judge the alerts again"
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(receiver.delivered(), 1, "still one delivery");
}
