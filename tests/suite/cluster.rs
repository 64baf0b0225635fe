//! Apache Ballista: a scheduler and executors as separate `kpi cluster` processes on
//! 127.0.0.1, the engine as their client (`KPI_CLUSTER`), every number checked against the
//! embedded engine's. Built with `--features cluster` (scripts/test).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kpi::engine::QueryLimits;
use tempfile::TempDir;

use crate::rollups::{assert_same_reports, open_with, reports_with};
use crate::support::*;

/// A running cluster; its processes are killed when it is dropped.
struct Cluster {
    url: String,
    rest: String,
    scheduler: Child,
    executors: Vec<Child>,
    /// Environment of every role (the S3 settings).
    env: Vec<(String, String)>,
    logs: TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port nothing listens on now and not handed out before in this test binary (with `pair`,
/// the next one too: an executor binds its port and the next), so roles started one after the
/// other never pick a port a role still starting is about to bind.
fn free_port(pair: bool) -> u16 {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
        if taken.contains(&port) || taken.contains(&(port + 1)) {
            continue;
        }
        if !pair || std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            taken.extend([port, port + 1]);
            return port;
        }
    }
}

fn role(
    project: &Path,
    data: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_kpi"))
        .arg("--project")
        .arg(project)
        .arg("--data")
        .arg(data)
        .arg("cluster")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("KPI_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("kpi cluster starts")
}

impl Cluster {
    /// A scheduler and `executors` executors (two slots each) for `project` over `data`,
    /// returned once every executor has registered.
    async fn start(project: &Path, data: &Path, executors: usize) -> Self {
        Self::start_with(project, data, executors, Vec::new()).await
    }

    /// [`Cluster::start`] with environment variables for every role.
    async fn start_with(
        project: &Path,
        data: &Path,
        executors: usize,
        env: Vec<(String, String)>,
    ) -> Self {
        let logs = TempDir::new().expect("logs");
        let port = free_port(false);
        let scheduler = role(
            project,
            data,
            &[
                "scheduler".into(),
                "--addr".into(),
                format!("127.0.0.1:{port}"),
                "--executor-timeout-seconds".into(),
                "10".into(),
                "--no-executors-grace-seconds".into(),
                "10".into(),
            ],
            &env,
            &logs.path().join("scheduler.log"),
        );
        let mut cluster = Self {
            url: format!("df://127.0.0.1:{port}"),
            rest: format!("http://127.0.0.1:{port}"),
            scheduler,
            executors: Vec::new(),
            env,
            logs,
        };
        for index in 0..executors {
            cluster.add_executor(project, data, index);
        }
        let ready = eventually(60, || async {
            cluster.executor_count().await == Some(executors)
        })
        .await;
        assert!(ready, "{executors} executors registered within 60 s");
        cluster
    }

    fn add_executor(&mut self, project: &Path, data: &Path, index: usize) {
        let port = free_port(true);
        let child = role(
            project,
            data,
            &[
                "executor".into(),
                "--scheduler".into(),
                self.url.trim_start_matches("df://").to_string(),
                "--addr".into(),
                format!("127.0.0.1:{port}"),
                "--slots".into(),
                "2".into(),
            ],
            &self.env,
            &self.logs.path().join(format!("executor-{index}.log")),
        );
        self.executors.push(child);
    }

    /// Executors registered, once the scheduler answers.
    async fn executor_count(&self) -> Option<usize> {
        self.api("/api/executors")
            .await
            .and_then(|value| value.as_array().map(Vec::len))
    }

    /// Jobs the scheduler has run.
    async fn jobs(&self) -> usize {
        self.api("/api/jobs")
            .await
            .and_then(|value| value.as_array().map(Vec::len))
            .unwrap_or(0)
    }

    async fn api(&self, path: &str) -> Option<serde_json::Value> {
        let response = reqwest::get(format!("{}{path}", self.rest)).await.ok()?;
        response.json().await.ok()
    }
}

/// Analyst SQL that reads a Hive partition column, the de-duplicating views and the
/// attribution table (under two models), as ordered text rows.
const QUERIES: [&str; 4] = [
    "SELECT month, count(*) AS days, sum(spend) AS spend FROM ads.campaign_daily \
     GROUP BY month ORDER BY month",
    "SELECT channel, count(*) AS sessions FROM reporting.sessions GROUP BY channel ORDER BY channel",
    "SELECT model, channel, count(*) AS n, round(sum(credit), 6) AS credit \
     FROM reporting.attribution GROUP BY model, channel ORDER BY model, channel",
    "SELECT conversion_type, channel, round(sum(credit), 6) AS credit \
     FROM attribution('markov', '60d') GROUP BY conversion_type, channel ORDER BY 1, 2",
];

async fn answers(engine: &kpi::engine::Engine) -> Vec<String> {
    let limits = QueryLimits {
        timeout: Duration::from_secs(300),
        max_rows: 10_000,
    };
    let mut out = Vec::new();
    for sql in QUERIES {
        let result = engine.run_sql(sql, limits).await.expect(sql);
        assert!(result.rows > 0, "rows for {sql}");
        out.push(kpi::output::render(&result, kpi::output::Format::Csv).expect("csv"));
    }
    out
}

/// Both dashboards' rollup builds (every KPI, breakdown, funnel, attribution piece and health
/// query of two weeks) and the analyst SQL above run on a scheduler and two executors and give
/// exactly the embedded engine's numbers; the scheduler ran the jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_builds_and_sql_on_a_cluster_equal_the_embedded_engine() {
    let project = repo();
    let data = demo_data();
    let cluster = Cluster::start(&project, data, 2).await;
    let on_cluster = [("KPI_CLUSTER", cluster.url.as_str())];

    let store = TempDir::new().expect("store");
    let (built, engine) = reports_with(&project, data, Some(store.path()), &on_cluster).await;
    let activity = engine.rollups().expect("rollups on").activity();
    assert!(activity.computed > 100, "the build computed: {activity:?}");
    let jobs = cluster.jobs().await;
    assert!(
        jobs as u64 >= activity.queries.min(10),
        "the build's queries ran as cluster jobs: {jobs} jobs for {activity:?}"
    );
    let (reference, _) = reports_with(&project, data, None, &[]).await;
    assert_same_reports(&built, &reference, "a build on the cluster");

    let clustered = answers(&engine).await;
    let (_, local) = open_with(&project, data, None, &[]).await;
    kpi::defs::load_and_install(local.config(), &local)
        .await
        .expect("definitions");
    let embedded = answers(&local).await;
    for ((sql, a), b) in QUERIES.iter().zip(&clustered).zip(&embedded) {
        assert_eq!(
            a, b,
            "{sql}: the cluster's answer differs from the embedded engine's"
        );
    }
    assert!(cluster.jobs().await > jobs, "the SQL ran on the cluster");

    // The server as the cluster's client: /healthz shows it, POST /api/v1/sql runs there.
    let server = TestServer::start(
        &project,
        &data.display().to_string(),
        "",
        &[("KPI_CLUSTER", &cluster.url)],
    )
    .await;
    let health = server.get_json("/healthz").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["cluster"]["url"], cluster.url.as_str());
    assert_eq!(health["cluster"]["reachable"], true);
    assert_eq!(
        health["cluster"]["executors"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(health["cluster"]["slots"], 4, "two executors of two slots");
    let before = cluster.jobs().await;
    let (status, body) = server.sql(QUERIES[0]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        cluster.jobs().await > before,
        "POST /api/v1/sql ran on the cluster"
    );
}

/// No silent fallback: a scheduler with no executors fails a query within the grace period,
/// and an unreachable scheduler at once, each error naming the cluster and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_executors_or_unreachable_fails_naming_it() {
    let project = repo();
    let data = demo_data();
    let cluster = Cluster::start(&project, data, 0).await;
    let limits = QueryLimits {
        timeout: Duration::from_secs(120),
        max_rows: 10,
    };
    let (_, engine) = open_with(&project, data, None, &[("KPI_CLUSTER", &cluster.url)]).await;
    let started = Instant::now();
    let error = engine
        .run_sql("SELECT count(*) FROM analytics.sessions", limits)
        .await
        .expect_err("no executors: the query fails");
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "failed within the grace period: {:?}",
        started.elapsed()
    );
    assert!(
        error.message.contains(&cluster.url) && error.message.contains("no executors"),
        "names the cluster and the cause: {}",
        error.message
    );
    assert!(
        error.message.contains("kpi cluster executor"),
        "{}",
        error.message
    );
    let server = TestServer::start(
        &project,
        &data.display().to_string(),
        "",
        &[("KPI_CLUSTER", &cluster.url)],
    )
    .await;
    let health = server.get_json("/healthz").await;
    assert_eq!(health["status"], "degraded", "no executors: {health}");
    assert_eq!(health["cluster"]["executors"], serde_json::json!([]));

    let nobody = format!("df://127.0.0.1:{}", free_port(false));
    let (_, engine) = open_with(&project, data, None, &[("KPI_CLUSTER", &nobody)]).await;
    let started = Instant::now();
    let error = engine
        .run_sql("SELECT 1", limits)
        .await
        .expect_err("unreachable: the query fails");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        error.message.contains(&nobody) && error.message.contains("kpi cluster scheduler"),
        "{}",
        error.message
    );
}

/// The same analyst SQL (a Hive partition column, views, attribution) over an S3 data root
/// (moto): the roles reach the bucket with kpi.toml's settings, and the answers equal the
/// embedded engine's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_data_root_on_the_cluster_gives_the_embedded_answers() {
    use crate::s3::{s3_env, s3_store, start_moto, upload_dir, BUCKET};
    let moto = start_moto().await;
    upload_dir(&s3_store(&moto.endpoint), demo_data(), "landed").await;
    let data = format!("s3://{BUCKET}/landed");
    let env: Vec<(String, String)> = s3_env(&moto.endpoint)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let project = repo();
    let cluster = Cluster::start_with(&project, Path::new(&data), 2, env.clone()).await;
    let mut extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let local = open_with(&project, Path::new(&data), None, &extra).await.1;
    extra.push(("KPI_CLUSTER", &cluster.url));
    let remote = open_with(&project, Path::new(&data), None, &extra).await.1;
    for engine in [&local, &remote] {
        kpi::defs::load_and_install(engine.config(), engine)
            .await
            .expect("definitions");
    }
    let jobs = cluster.jobs().await;
    let (clustered, embedded) = (answers(&remote).await, answers(&local).await);
    for ((sql, a), b) in QUERIES.iter().zip(&clustered).zip(&embedded) {
        assert_eq!(a, b, "{sql}: the cluster's answer over S3 differs");
    }
    assert!(
        cluster.jobs().await >= jobs + QUERIES.len(),
        "the SQL ran on the cluster"
    );
}

/// An executor killed (SIGKILL) in the middle of a rollup build: Ballista runs its tasks on
/// the other executor, or fails the job; kpi either finishes with the reference numbers or
/// fails naming the cluster, and never stores a partial answer (a rebuild without the cluster
/// then gives the reference numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_killed_during_a_build_is_retried_or_reported() {
    let project = repo();
    let data = demo_data();
    let mut cluster = Cluster::start(&project, data, 2).await;
    let store = TempDir::new().expect("store");
    let build = Command::new(env!("CARGO_BIN_EXE_kpi"))
        .arg("--project")
        .arg(&project)
        .arg("--data")
        .arg(data)
        .args(["rollups", "build", "--week", "2026-W46", "--weeks", "2"])
        .env("KPI_CLUSTER", &cluster.url)
        .env("KPI_CLUSTER_JOB_TIMEOUT_MS", "45000")
        .env("KPI_ROLLUPS", store.path())
        .env("KPI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kpi rollups build starts");
    let started = eventually(120, || async { cluster.jobs().await >= 3 }).await;
    assert!(started, "the build submitted jobs");
    let victim = &mut cluster.executors[0];
    victim.kill().expect("kill an executor");
    victim.wait().expect("reaped");
    let output = tokio::task::spawn_blocking(move || build.wait_with_output())
        .await
        .expect("join")
        .expect("build output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        assert!(
            stderr.contains(&cluster.url),
            "a failed build names the cluster: {stderr}"
        );
    }
    let remaining = cluster.executor_count().await;
    assert!(
        eventually(30, || async { cluster.executor_count().await == Some(1) }).await,
        "the scheduler dropped the dead executor: {remaining:?}"
    );
    // Whatever the build stored is exact: reports over the store (finishing any missing
    // partitions in this process) equal the reference path.
    let (stored, _) = reports_with(&project, data, Some(store.path()), &[]).await;
    let (reference, _) = reports_with(&project, data, None, &[]).await;
    assert_same_reports(&stored, &reference, "an executor lost during a build");
}

/// Every metric of the demo catalog, as a series of seven weeks computed straight from the
/// views (rollups off, so each metric's own queries run), on the cluster and in one process:
/// the same JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metric_catalog_on_a_cluster_equals_the_embedded_engine() {
    let project = repo();
    let data = demo_data();
    let cluster = Cluster::start(&project, data, 2).await;
    let (config, engine) = open_with(&project, data, None, &[]).await;
    let registry = kpi::defs::load_and_install(&config, &engine)
        .await
        .expect("definitions");
    assert!(registry.metrics.len() >= 20, "the whole demo catalog");
    let series = |name: &str, cluster: Option<&str>| {
        let mut envs = vec![("KPI_ROLLUPS_ENABLED", "false")];
        envs.extend(cluster.map(|url| ("KPI_CLUSTER", url)));
        let output = kpi(
            &[
                "metric",
                name,
                "--project",
                project.to_str().expect("utf-8"),
                "--data",
                data.to_str().expect("utf-8"),
                "--from",
                "2026-W40",
                "--to",
                "2026-W46",
                "--format",
                "json",
            ],
            &envs,
        );
        assert!(
            output.status.success(),
            "kpi metric {name} (cluster {cluster:?}): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let jobs = cluster.jobs().await;
    for name in registry.metrics.keys() {
        let (remote, local) = (series(name, Some(&cluster.url)), series(name, None));
        assert!(remote.contains("2026-W46"), "{name}: {remote}");
        assert_eq!(remote, local, "{name}: the cluster's series differs");
    }
    assert!(
        cluster.jobs().await >= jobs + registry.metrics.len(),
        "every metric ran on the cluster"
    );
}
