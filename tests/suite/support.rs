//! Shared helpers: demo data, project copies, the kpi binary, DuckDB, and a running server.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use kpi::config::{Config, Overrides};
use kpi::web::Application;
use tempfile::TempDir;

/// The demo tables and the DuckDB glob that reads each independently.
pub const TABLES: [&str; 7] = kpi::demo::DEMO_TABLES;

/// Repository root (the demo project).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A small demo data set (60 weeks, scale 0.2), generated once per test run, shared read-only.
pub fn demo_data() -> &'static Path {
    static DEMO: OnceLock<TempDir> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = TempDir::new().expect("temp dir");
        let options = kpi::demo::DemoOptions {
            out: dir.path().to_path_buf(),
            seed: 7,
            end: NaiveDate::from_ymd_opt(2026, 11, 15).expect("date"),
            weeks: 60,
            scale: 0.2,
            time_zone: chrono_tz::America::New_York,
            force: false,
        };
        kpi::demo::generate(&options, &mut |_| {}).expect("demo data generates");
        dir
    })
    .path()
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A private copy of the demo data (for tests that land files).
pub fn demo_data_copy() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    copy_dir(demo_data(), dir.path());
    dir
}

/// A private copy of the repository's definitions and kpi.toml.
pub fn project_copy() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    for folder in ["metrics", "queries", "dashboards"] {
        copy_dir(&repo().join(folder), &dir.path().join(folder));
    }
    std::fs::copy(repo().join("kpi.toml"), dir.path().join("kpi.toml")).expect("copy kpi.toml");
    dir
}

/// Runs the `kpi` binary.
pub fn kpi(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kpi"));
    command
        .args(args)
        .env_remove("KPI_DATA")
        .env("KPI_LOG", "warn");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("kpi runs")
}

/// Runs `kpi query --format json` and returns the parsed rows.
pub fn kpi_query_json(
    project: &Path,
    data: &str,
    sql: &str,
    envs: &[(&str, &str)],
) -> serde_json::Value {
    let output = kpi(
        &[
            "query",
            "--project",
            project.to_str().expect("utf-8"),
            "--data",
            data,
            "--format",
            "json",
            "--sql",
            sql,
        ],
        envs,
    );
    assert!(
        output.status.success(),
        "kpi query failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

/// The Python interpreter that has duckdb and moto (set by scripts/test).
pub fn python() -> String {
    std::env::var("KPI_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Runs one SQL statement in DuckDB (an independent engine) and returns the first value.
pub fn duckdb_scalar(sql: &str) -> String {
    let script =
        "import duckdb, sys\nprint(duckdb.connect().execute(sys.argv[1]).fetchall()[0][0])";
    let output = Command::new(python())
        .args(["-c", script, sql])
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {}: {error}; run scripts/test, which installs duckdb",
                python()
            )
        });
    assert!(
        output.status.success(),
        "DuckDB failed (run scripts/test, which installs duckdb into .venv): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The DuckDB expression that reads a landed table's files directly.
pub fn duckdb_table(data: &Path, table: &str) -> String {
    let (source, name) = table.split_once('.').expect("qualified");
    format!(
        "read_parquet('{}/{source}/{name}/**/*.parquet', hive_partitioning = true)",
        data.display()
    )
}

/// A server running in this process on a free port.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub config: Arc<Config>,
    _task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts the real server for `project` over `data`, with extra kpi.toml text appended.
    pub async fn start(
        project: &Path,
        data: &str,
        server_toml: &str,
        envs: &[(&str, &str)],
    ) -> Self {
        let text = std::fs::read_to_string(project.join("kpi.toml")).unwrap_or_default();
        let text = text.replace("addr = \"127.0.0.1:8080\"", "addr = \"127.0.0.1:0\"");
        let text = insert_server_keys(&text, server_toml);
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Servers build in the background only in the tests of that build (many test servers
        // share two cores); a test turns it on with KPI_ROLLUPS_BACKGROUND=true.
        // The data root is listed every 50 ms: a test that lands a file calls `settle`.
        let env = move |name: &str| {
            envs.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| (name == "KPI_ROLLUPS_BACKGROUND").then(|| "false".to_string()))
                .or_else(|| (name == "KPI_REFRESH_INTERVAL_MS").then(|| "50".to_string()))
        };
        let overrides = Overrides {
            data: Some(data.to_string()),
            addr: Some("127.0.0.1:0".into()),
        };
        let config = Arc::new(
            Config::from_parts(project, &text, &env, &overrides).expect("valid test config"),
        );
        let application = Application::build(Arc::clone(&config))
            .await
            .expect("server builds");
        let addr = application.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            application.run().await.expect("server runs");
        });
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            config,
            _task: task,
        }
    }

    /// Waits until the server has listed the data root entirely after this call: files landed
    /// before it are then served (the server lists in the background, never per request).
    pub async fn settle(&self) {
        let listings = |health: &serde_json::Value| health["listing"]["listings"].as_u64();
        let start = listings(&self.get_json("/healthz").await).expect("listings in /healthz");
        for _ in 0..600 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if listings(&self.get_json("/healthz").await).unwrap_or(0) >= start + 2 {
                return;
            }
        }
        panic!("the server did not list the data root within 6 s");
    }

    /// GETs a JSON document.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    /// POSTs SQL; returns the status and the JSON body.
    pub async fn sql(&self, sql: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/sql", self.base))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    /// Runs a one-value query that must succeed and returns the value.
    pub async fn scalar(&self, sql: &str) -> serde_json::Value {
        let (status, body) = self.sql(sql).await;
        assert_eq!(status, 200, "{sql}: {body}");
        let row = body["rows"][0].as_object().expect("one row").clone();
        row.values().next().expect("one column").clone()
    }
}

/// Adds keys to the `[server]` table of a kpi.toml text.
fn insert_server_keys(text: &str, keys: &str) -> String {
    if keys.is_empty() {
        return text.to_string();
    }
    // Keys given here replace the file's own.
    let names: Vec<&str> = keys
        .lines()
        .filter_map(|line| line.split('=').next())
        .map(str::trim)
        .collect();
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            !names
                .iter()
                .any(|name| line.split('=').next().map(str::trim) == Some(name))
        })
        .collect();
    let text = kept.join("\n") + "\n";
    match text.find("[server]\n") {
        Some(at) => {
            let insert_at = at + "[server]\n".len();
            format!("{}{keys}\n{}", &text[..insert_at], &text[insert_at..])
        }
        None => format!("{text}\n[server]\n{keys}\n"),
    }
}

/// Writes a file atomically (temporary name, then rename), as a landing job would.
/// Lands a copy of one of `folder`'s Parquet files again as `name` (every row twice).
pub fn land_copy(folder: &Path, name: &str) {
    let existing = std::fs::read_dir(folder)
        .expect("dir")
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .expect("a parquet file")
        .path();
    land(&folder.join(name), &std::fs::read(existing).expect("read"));
}

pub fn land(path: &Path, bytes: &[u8]) {
    let folder = path.parent().expect("parent");
    std::fs::create_dir_all(folder).expect("folder");
    let temporary = folder.join(format!(
        ".{}.tmp",
        path.file_name().expect("name").to_string_lossy()
    ));
    std::fs::write(&temporary, bytes).expect("write");
    std::fs::rename(&temporary, path).expect("rename");
}

/// Number of rows in a Parquet file, read from its footer with the parquet crate.
pub fn parquet_rows(path: &Path) -> i64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).expect("open");
    SerializedFileReader::new(file)
        .expect("parquet")
        .metadata()
        .file_metadata()
        .num_rows()
}

/// Polls `check` until it returns true or `seconds` pass.
pub async fn eventually<F, Fut>(seconds: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// Runs many DuckDB queries in one Python process; each returns rows of (dimension, value).
pub fn duckdb_many(queries: &[String]) -> Vec<Vec<(String, Option<f64>)>> {
    // A division by zero is Infinity in DuckDB and "no value" in kpi: both become null.
    let script = "import duckdb, json, math, sys\ncon = duckdb.connect()\nout = []\nfor sql in json.loads(sys.stdin.read()):\n    rows = con.execute(sql).fetchall()\n    value = lambda v: float(v) if v is not None and math.isfinite(float(v)) else None\n    out.append([[str(r[0]) if len(r) > 1 else '', value(r[-1])] for r in rows])\nprint(json.dumps(out))";
    let mut child = std::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs (scripts/test installs duckdb)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(queries).expect("json").as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<Vec<(String, Option<f64>)>> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| {
            panic!(
                "{error}: {}",
                String::from_utf8_lossy(&output.stdout)
                    .chars()
                    .take(400)
                    .collect::<String>()
            )
        });
    parsed
}

/// Returns the attributes of every element of an HTML text that has attribute `marker`
/// (a tiny reader for the pages kpi renders: double-quoted attributes, escaped values).
pub fn elements_with(html: &str, marker: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut found = Vec::new();
    for (start, _) in html.match_indices('<') {
        let Some(length) = html[start..].find('>') else {
            break;
        };
        let tag = &html[start + 1..start + length];
        if !tag.contains(&format!(" {marker}=\"")) {
            continue;
        }
        let mut attributes = std::collections::BTreeMap::new();
        let mut rest = tag;
        while let Some(eq) = rest.find("=\"") {
            let name = rest[..eq]
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            let after = &rest[eq + 2..];
            let Some(end) = after.find('"') else { break };
            let value = after[..end]
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            attributes.insert(name, value);
            rest = &after[end + 1..];
        }
        found.push(attributes);
    }
    found
}
