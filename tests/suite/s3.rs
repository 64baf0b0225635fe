//! The same data served from a real S3-compatible server (moto, started here on 127.0.0.1).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::support::*;

pub(crate) const BUCKET: &str = "kpi-landing";

/// A moto S3 server process, stopped when dropped.
pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
    /// moto's request log (werkzeug's access lines on stderr).
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// How many object listings (`GET /bucket?list-type=2...`) moto has answered.
    fn lists(&self) -> usize {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("list-type=2"))
            .count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let log = tempfile::NamedTempFile::new().expect("log file");
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
        .stderr(log.reopen().expect("log file"))
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot start moto with {}: {error}; run scripts/test, which installs moto[server]",
                python()
            )
        });
    let endpoint = format!("http://127.0.0.1:{port}");
    let moto = Moto {
        child,
        endpoint,
        log,
    };
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

pub(crate) fn s3_store(endpoint: &str) -> impl ObjectStore {
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

pub(crate) async fn upload_dir(store: &impl ObjectStore, local: &Path, prefix: &str) {
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

pub(crate) fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
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
    server.settle().await;
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

/// Two hosts sharing one send log on S3 send once: a claim is a create-only object and a
/// re-claim of a failed send a conditional update, and S3 refuses the second writer of each.
/// (The hosts take turns: moto's conditional writes are not atomic under truly simultaneous
/// requests, as S3's are, so a simultaneous race would test moto, not kpi.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_sharing_an_s3_send_log_send_once() {
    use kpi::email::{Claim, SendLog};
    use object_store::{PutMode, PutOptions, UpdateVersion};
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
    // The two primitives the log relies on, as this S3 server implements them.
    let store = s3_store(&moto.endpoint);
    let path = ObjectPath::from("sends/primitives.json");
    let create = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let first = store
        .put_opts(&path, "a".into(), create.clone())
        .await
        .expect("create");
    assert!(matches!(
        store.put_opts(&path, "b".into(), create).await,
        Err(object_store::Error::AlreadyExists { .. })
    ));
    let stale = UpdateVersion {
        e_tag: first.e_tag.clone(),
        version: first.version.clone(),
    };
    let update = |version: UpdateVersion| PutOptions {
        mode: PutMode::Update(version),
        ..Default::default()
    };
    store
        .put_opts(&path, "c".into(), update(stale.clone()))
        .await
        .expect("update from the current version");
    assert!(matches!(
        store.put_opts(&path, "d".into(), update(stale)).await,
        Err(object_store::Error::Precondition { .. })
    ));

    // Two hosts: two logs over two clients, one bucket.
    let (host_a, host_b) = (
        SendLog::open(&config).expect("log"),
        SendLog::open(&config).expect("log"),
    );
    for round in 0..3 {
        let key = format!("turns-{round}");
        assert!(matches!(
            host_a.claim(send_record(&key), false).await.expect("claim"),
            Claim::Claimed(_)
        ));
        assert!(
            matches!(
                host_b.claim(send_record(&key), false).await.expect("claim"),
                Claim::InProgress(_)
            ),
            "round {round}: the second host finds the send in progress"
        );
        // The send failed: the next host to claim it takes it over, with its attempts.
        let mut failed = send_record(&key);
        failed.status = "failed".into();
        failed.attempts = 4;
        host_a.update(&failed).await.expect("update");
        let retry = match host_b.claim(send_record(&key), false).await.expect("claim") {
            Claim::Claimed(record) => record,
            _ => panic!("round {round}: a failed send is claimed again"),
        };
        assert_eq!(retry.attempts, 4, "the attempts carry over");
        assert!(matches!(
            host_a.claim(send_record(&key), false).await.expect("claim"),
            Claim::InProgress(_)
        ));
        let mut sent = retry;
        sent.status = "sent".into();
        host_b.update(&sent).await.expect("update");
        assert!(matches!(
            host_a.claim(send_record(&key), false).await.expect("claim"),
            Claim::AlreadySent(_)
        ));
    }
    assert_eq!(host_b.list().await.len(), 3);
}

/// A rollup store on S3: the second process answers the report from it without a query, with
/// the same numbers as the reference path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollup_store_on_s3_is_reused_across_processes() {
    let moto = start_moto().await;
    let store = s3_store(&moto.endpoint);
    upload_dir(&store, demo_data(), "landed").await;
    let data = format!("s3://{BUCKET}/landed");
    let mut env = s3_env(&moto.endpoint);
    env.push(("KPI_ROLLUPS", format!("s3://{BUCKET}/rollups")));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = tempfile::TempDir::new().expect("out");
    let project = project_copy();
    let report = |name: &str, extra: &[(&str, &str)]| {
        let path = out.path().join(name);
        let mut envs = env_refs.clone();
        envs.extend_from_slice(extra);
        let output = kpi(
            &[
                "report",
                "weekly-marketing",
                "--week",
                "2026-W45",
                "--project",
                project.path().to_str().expect("utf-8"),
                "--data",
                &data,
                "--out",
                path.to_str().expect("utf-8"),
            ],
            &envs,
        );
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "kpi report failed: {stderr}");
        (std::fs::read_to_string(&path).expect("report"), stderr)
    };
    let (first, log) = report("first.json", &[]);
    assert!(
        !log.contains(" 0 computed"),
        "the first build computes: {log}"
    );
    let (again, log) = report("again.json", &[]);
    assert!(
        log.contains(" 0 computed in 0 queries"),
        "a restart reuses: {log}"
    );
    let (reference, _) = report("reference.json", &[("KPI_ROLLUPS_ENABLED", "false")]);
    assert_eq!(first, reference, "store and reference path agree");
    assert_eq!(again, reference, "the reused store agrees");
}

/// The server lists the bucket on its refresh interval, not per request: a burst of requests
/// (health, analyst SQL scanning a table, a metric series) adds no LIST beyond the interval's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_do_not_list_the_bucket() {
    let moto = start_moto().await;
    let store = s3_store(&moto.endpoint);
    upload_dir(&store, demo_data(), "landed").await;
    let data = format!("s3://{BUCKET}/landed");
    let mut env = s3_env(&moto.endpoint);
    env.push(("KPI_REFRESH_INTERVAL_MS", "3000".to_string()));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = TestServer::start(&repo(), &data, "", &env_refs).await;
    let listings = |health: serde_json::Value| health["listing"]["listings"].as_u64();

    let (moto_before, kpi_before) = (moto.lists(), listings(server.get_json("/healthz").await));
    let mut requests = 0;
    for round in 0..10 {
        for table in ["analytics.sessions", "crm.contacts", "email.sends"] {
            server
                .scalar(&format!("SELECT count(*) FROM {table}"))
                .await;
            requests += 1;
        }
        server.get_json("/healthz").await;
        requests += 1;
        if round % 5 == 0 {
            server
                .get_json("/api/v1/metrics/sessions?from=2026-W40&to=2026-W46")
                .await;
            requests += 1;
        }
    }
    let kpi_listings = listings(server.get_json("/healthz").await).expect("listings")
        - kpi_before.expect("listings");
    let lists = moto.lists() - moto_before;
    // Every LIST moto answered is one of the server's own listings of the root (one every
    // 3 s; one may be in flight at either end), however many requests came: before, every
    // request listed the root and every scan its table's folder.
    assert!(
        lists as u64 <= kpi_listings + 1,
        "{lists} LIST calls during {requests} requests, the server listed {kpi_listings} times"
    );
    assert!(
        lists * 3 < requests,
        "{lists} LIST calls during {requests} requests"
    );

    // And a landed file is still served, within the interval.
    let file = demo_data().join("analytics/sessions/sessions-2026-02.parquet");
    let count = || async {
        server
            .scalar("SELECT count(*) FROM analytics.sessions")
            .await
            .as_i64()
            .expect("count")
    };
    let was = count().await;
    store
        .put(
            &ObjectPath::from("landed/analytics/sessions/again.parquet"),
            std::fs::read(&file).expect("read").into(),
        )
        .await
        .expect("upload");
    server.settle().await;
    assert_eq!(count().await, was + parquet_rows(&file));
}
