//! The same data served from a real S3-compatible server (moto, started here on 127.0.0.1).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::support::*;

const BUCKET: &str = "kpi-landing";

/// A moto S3 server process, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(python())
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start moto with {}: {error}; run scripts/test, which installs moto[server]",
                python()
            )
        });
    let endpoint = format!("http://127.0.0.1:{port}");
    let moto = Moto { child, endpoint };
    let client = reqwest::Client::new();
    let ready = eventually(60, || async {
        client.get(&moto.endpoint).send().await.is_ok()
    })
    .await;
    assert!(
        ready,
        "moto did not start on {} (is moto[server] installed? run scripts/test)",
        moto.endpoint
    );
    let created = client
        .put(format!("{}/{BUCKET}", moto.endpoint))
        .send()
        .await
        .expect("create bucket");
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    moto
}

fn s3_store(endpoint: &str) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("s3 store")
}

async fn upload_dir(store: &impl ObjectStore, local: &Path, prefix: &str) {
    let mut stack = vec![local.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(local)
                .expect("relative")
                .to_string_lossy()
                .to_string();
            let key = ObjectPath::from(format!("{prefix}/{relative}"));
            store
                .put(&key, std::fs::read(&path).expect("read").into())
                .await
                .expect("upload");
        }
    }
}

fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KPI_S3_ENDPOINT", endpoint.to_string()),
        ("KPI_S3_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_queries_pass_against_s3() {
    let moto = start_moto().await;
    let store = s3_store(&moto.endpoint);
    upload_dir(&store, demo_data(), "landed").await;
    let data = format!("s3://{BUCKET}/landed");
    let env = s3_env(&moto.endpoint);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Row counts through the CLI equal DuckDB's counts over the local copy of the same files.
    for table in TABLES {
        let rows = kpi_query_json(
            &repo(),
            &data,
            &format!("SELECT count(*) AS n FROM {table}"),
            &env_refs,
        );
        let theirs: i64 = duckdb_scalar(&format!(
            "SELECT count(*) FROM {}",
            duckdb_table(demo_data(), table)
        ))
        .parse()
        .expect("integer");
        assert_eq!(rows[0]["n"].as_i64(), Some(theirs), "{table} on S3");
    }
    let output = kpi(
        &[
            "check",
            "--project",
            repo().to_str().expect("utf-8"),
            "--data",
            &data,
        ],
        &env_refs,
    );
    assert!(
        output.status.success(),
        "check on S3: {}",
        String::from_utf8_lossy(&output.stdout)
    );

    // The server over S3 sees a file landed while it runs.
    let server = TestServer::start(&repo(), &data, "", &env_refs).await;
    let before = server
        .scalar("SELECT count(*) FROM analytics.sessions")
        .await
        .as_i64()
        .expect("count");
    let file = demo_data().join("analytics/sessions/sessions-2026-02.parquet");
    let key = ObjectPath::from("landed/analytics/sessions/sessions-2026-02-resend.parquet");
    store
        .put(&key, std::fs::read(&file).expect("read").into())
        .await
        .expect("upload");
    let after = server
        .scalar("SELECT count(*) FROM analytics.sessions")
        .await
        .as_i64()
        .expect("count");
    assert_eq!(after, before + parquet_rows(&file));
    let health = server.get_json("/healthz").await;
    assert_eq!(health["data_root"], data);
    assert_eq!(health["status"], "ok", "{health}");

    // Snapshots in the same bucket: written create-only, taken once for the same inputs.
    let mut snapshot_env = env_refs.clone();
    let snapshots = format!("s3://{BUCKET}/snapshots");
    snapshot_env.push(("KPI_SNAPSHOTS", snapshots.as_str()));
    let take = || {
        kpi(
            &[
                "snapshot",
                "sales-pipeline",
                "--project",
                repo().to_str().expect("utf-8"),
                "--data",
                &data,
                "--week",
                "2026-W44",
            ],
            &snapshot_env,
        )
    };
    let first = take();
    let stdout = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.starts_with("new snapshot "), "{stdout}");
    let id = stdout["new snapshot ".len()..]
        .split(' ')
        .next()
        .expect("id")
        .to_string();
    let key = ObjectPath::from(format!(
        "snapshots/sales-pipeline/2026-W44/{id}/snapshot.json"
    ));
    let stored = store.get(&key).await.expect("snapshot.json on S3");
    assert!(!stored.bytes().await.expect("bytes").is_empty());
    let second = take();
    assert!(
        String::from_utf8_lossy(&second.stdout)
            .starts_with(&format!("unchanged: existing snapshot {id}")),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// A send-log record as a send would claim it.
fn send_record(key: &str) -> kpi::email::SendRecord {
    let now = chrono::Utc::now();
    kpi::email::SendRecord {
        key: key.into(),
        dashboard: "weekly-marketing".into(),
        week: "2026-W44".into(),
        recipients: vec!["cmo@acme.example".into()],
        snapshot: "abc".into(),
        message_id: "<m@kpi>".into(),
        status: "sending".into(),
        attempts: 0,
        error: None,
        started_at: now,
        updated_at: now,
        smtp_reply: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_sharing_an_s3_send_log_send_once() {
    use kpi::email::{Claim, SendLog};
    let moto = start_moto().await;
    let env = s3_env(&moto.endpoint);
    let lookup = move |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| (name == "KPI_SEND_LOG").then(|| format!("s3://{BUCKET}/sends")))
    };
    let config =
        kpi::config::Config::from_parts(&repo(), "", &lookup, &kpi::config::Overrides::default())
            .expect("config");
    // Two hosts: two stores, two clients, one bucket.
    let (first, second) = (
        SendLog::open(&config).expect("log"),
        SendLog::open(&config).expect("log"),
    );
    let claimed = |claim: &Claim| matches!(claim, Claim::Claimed(_));
    for round in 0..5 {
        let key = format!("race-{round}");
        let (a, b) = tokio::join!(
            first.claim(send_record(&key), false),
            second.claim(send_record(&key), false)
        );
        let (a, b) = (a.expect("claim"), b.expect("claim"));
        assert_eq!(
            [claimed(&a), claimed(&b)].iter().filter(|c| **c).count(),
            1,
            "round {round}: exactly one host claims the send"
        );
        // A failed send is claimed again, by exactly one of the hosts.
        let mut failed = send_record(&key);
        failed.status = "failed".into();
        failed.attempts = 4;
        first.update(&failed).await.expect("update");
        let (a, b) = tokio::join!(
            first.claim(send_record(&key), false),
            second.claim(send_record(&key), false)
        );
        let (a, b) = (a.expect("claim"), b.expect("claim"));
        assert_eq!(
            [claimed(&a), claimed(&b)].iter().filter(|c| **c).count(),
            1,
            "round {round}: exactly one host re-claims a failed send"
        );
        let winner = if let Claim::Claimed(record) = if claimed(&a) { a } else { b } {
            record
        } else {
            unreachable!()
        };
        assert_eq!(winner.attempts, 4, "the attempts carry over");
        // Sent: neither claims it again.
        let mut sent = winner;
        sent.status = "sent".into();
        second.update(&sent).await.expect("update");
        assert!(matches!(
            first.claim(send_record(&key), false).await.expect("claim"),
            Claim::AlreadySent(_)
        ));
    }
    assert_eq!(second.list().await.len(), 5);
}
