//! The rollup store against the reference path: random landings, a restart, a corrupt file,
//! two processes building at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use kpi::config::{Config, Overrides};
use kpi::engine::Engine;
use tempfile::TempDir;

use crate::support::*;

const WEEKS: [&str; 2] = ["2026-W45", "2026-W46"];

/// An engine over `data` for `project`, with the store at `store` (`None`: rollups off).
async fn open(project: &Path, data: &Path, store: Option<&Path>) -> (Arc<Config>, Engine) {
    open_with(project, data, store, &[]).await
}

/// [`open`] with more environment variables.
pub(crate) async fn open_with(
    project: &Path,
    data: &Path,
    store: Option<&Path>,
    extra: &[(&str, &str)],
) -> (Arc<Config>, Engine) {
    let text = std::fs::read_to_string(project.join("kpi.toml")).expect("kpi.toml");
    let store = store.map(|p| p.display().to_string());
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |name: &str| match (name, &store) {
        ("KPI_ROLLUPS", Some(path)) => Some(path.clone()),
        ("KPI_ROLLUPS_ENABLED", None) => Some("false".to_string()),
        _ => extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone()),
    };
    let overrides = Overrides {
        data: Some(data.display().to_string()),
        addr: None,
    };
    let config = Arc::new(Config::from_parts(project, &text, &env, &overrides).expect("config"));
    let engine = Engine::try_new(Arc::clone(&config)).expect("engine");
    engine.refresh().await.expect("refresh");
    (config, engine)
}

/// Every report of both demo dashboards for [`WEEKS`], as JSON.
async fn reports(project: &Path, data: &Path, store: Option<&Path>) -> (Vec<String>, Engine) {
    reports_with(project, data, store, &[]).await
}

/// [`reports`] with more environment variables.
pub(crate) async fn reports_with(
    project: &Path,
    data: &Path,
    store: Option<&Path>,
    extra: &[(&str, &str)],
) -> (Vec<String>, Engine) {
    let (config, engine) = open_with(project, data, store, extra).await;
    let registry = kpi::defs::load_and_install(&config, &engine)
        .await
        .expect("definitions load");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .expect("instant")
        .with_timezone(&chrono::Utc);
    let context = kpi::report::Context::new(&registry, &engine, &config, now);
    let mut out = Vec::new();
    for dashboard in ["weekly-marketing", "sales-pipeline"] {
        for week in WEEKS {
            let (definition, period) = context
                .dashboard_week(dashboard, Some(week))
                .expect("dashboard");
            let report = context.build(definition, period).await.expect("report");
            out.push(serde_json::to_string_pretty(&report).expect("json"));
        }
    }
    (out, engine)
}

pub(crate) fn assert_same_reports(stored: &[String], reference: &[String], step: &str) {
    for (index, (a, b)) in stored.iter().zip(reference).enumerate() {
        if a != b {
            let first = a
                .lines()
                .zip(b.lines())
                .find(|(x, y)| x != y)
                .map(|(x, y)| format!("store:     {x}\nreference: {y}"))
                .unwrap_or_default();
            panic!("after {step}, report {index} differs from the reference path:\n{first}");
        }
    }
}

/// A deterministic random sequence (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn parquet_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).expect("folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// How a derived file differs from the rows it copies.
#[derive(Default)]
struct Change<'a> {
    suffix: Option<(&'a str, String)>,
    shift_days: Option<(&'a str, i64)>,
    set: Option<(&'a str, &'a str)>,
}

/// Writes `rows` rows of `source` (from `offset`), changed as `change` says, as a new file.
fn derive(source: &Path, target: &Path, offset: usize, rows: usize, change: Change) {
    let all = read_batch(source);
    let schema = all.schema();
    let start = offset % all.num_rows().max(1);
    let batch = all.slice(start, rows.min(all.num_rows() - start));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let index = |name: &str| schema.index_of(name).expect("column");
    if let Some((name, suffix)) = &change.suffix {
        let i = index(name);
        let text = arrow::compute::cast(&columns[i], &DataType::Utf8).expect("text");
        let text = text
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("strings");
        let changed: StringArray = text
            .iter()
            .map(|v| v.map(|v| format!("{v}{suffix}")))
            .collect();
        columns[i] = arrow::compute::cast(&changed, schema.field(i).data_type()).expect("back");
    }
    if let Some((name, days)) = change.shift_days {
        let i = index(name);
        let data_type = schema.field(i).data_type().clone();
        let (as_int, per_day) = match &data_type {
            DataType::Date32 => (DataType::Int32, 1i64),
            _ => (DataType::Int64, 86_400_000_000i64),
        };
        let ints = arrow::compute::cast(&columns[i], &as_int).expect("ints");
        let ints = arrow::compute::cast(&ints, &DataType::Int64).expect("i64");
        let ints = ints
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("i64");
        let shifted: arrow::array::Int64Array =
            ints.iter().map(|v| v.map(|v| v + days * per_day)).collect();
        let shifted = arrow::compute::cast(&shifted, &as_int).expect("narrow");
        columns[i] = arrow::compute::cast(&shifted, &data_type).expect("typed");
    }
    if let Some((name, value)) = change.set {
        let i = index(name);
        let constant = StringArray::from(vec![value; batch.num_rows()]);
        columns[i] = arrow::compute::cast(&constant, schema.field(i).data_type()).expect("set");
    }
    let out = RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch");
    land(target, &parquet_bytes(&out));
}

/// Every row of a Parquet file, as one batch.
fn read_batch(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat")
}

/// `batch` as a Parquet file's bytes.
fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    bytes
}

/// Applies landing `kind` to `data` (or the definitions in `project`); returns what it did.
fn land_step(kind: usize, step: usize, rng: &mut Rng, data: &Path, project: &Path) -> String {
    let pick = |rng: &mut Rng, folder: &str| {
        let files = parquet_files(&data.join(folder));
        files[rng.below(files.len())].clone()
    };
    let offset = rng.below(10_000);
    match kind {
        0 => {
            let source = pick(rng, "analytics/sessions");
            let weeks = 1 + rng.below(3) as i64;
            let change = Change {
                suffix: Some(("session_id", format!("-late{step}"))),
                shift_days: Some(("started_at", -7 * weeks)),
                ..Change::default()
            };
            let target = data.join(format!("analytics/sessions/late-{step}.parquet"));
            derive(&source, &target, offset, 40, change);
            format!(
                "late sessions {weeks} week(s) back from {}",
                source.display()
            )
        }
        1 => {
            let source = pick(rng, "analytics/sessions");
            let target = data.join(format!("analytics/sessions/again-{step}.parquet"));
            derive(&source, &target, offset, 60, Change::default());
            format!("exact duplicates of sessions from {}", source.display())
        }
        2 => {
            let source = pick(rng, "ads/campaign_daily");
            let target = source
                .parent()
                .expect("month folder")
                .join(format!("late-{step}.parquet"));
            let change = Change {
                suffix: Some(("campaign_id", format!("-l{step}"))),
                shift_days: Some(("date", -7)),
                ..Change::default()
            };
            derive(&source, &target, offset, 12, change);
            format!("late ad rows in {}", target.display())
        }
        3 => {
            let source = pick(rng, "crm/contacts");
            let target = data.join(format!("crm/contacts/update-{step}.parquet"));
            let change = Change {
                set: Some(("region", "Antarctica")),
                ..Change::default()
            };
            derive(&source, &target, offset, 80, change);
            "a crm.contacts file that changes contacts' region".to_string()
        }
        4 => {
            let source = pick(rng, "crm/lifecycle_changes");
            let target = data.join(format!("crm/lifecycle_changes/late-{step}.parquet"));
            let change = Change {
                shift_days: Some(("changed_at", -14)),
                ..Change::default()
            };
            derive(&source, &target, offset, 30, change);
            "late lifecycle changes two weeks back".to_string()
        }
        5 => {
            let landed: Vec<PathBuf> = parquet_files(data)
                .into_iter()
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with("late-") || name.starts_with("again-")
                })
                .collect();
            let victim = if landed.is_empty() {
                pick(rng, "analytics/sessions")
            } else {
                landed[rng.below(landed.len())].clone()
            };
            std::fs::remove_file(&victim).expect("remove");
            format!("removed {}", victim.display())
        }
        _ => {
            let path = project.join("queries/campaign_daily.sql");
            let sql = std::fs::read_to_string(&path).expect("sql");
            let edited = if sql.contains("SELECT DISTINCT") {
                sql.replace("SELECT DISTINCT", "SELECT")
            } else {
                sql.replace("SELECT", "SELECT DISTINCT")
            };
            std::fs::write(&path, edited).expect("edit");
            "a definition edit (reporting.campaign_daily with or without DISTINCT)".to_string()
        }
    }
}

/// Random landings on a small data set; after each, every number of both dashboards for two
/// weeks equals the reference path, and only a part of the store is computed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_landings_keep_every_number_equal_to_the_reference_path() {
    let data = demo_data_copy();
    let project = project_copy();
    let store = TempDir::new().expect("store");
    let seed = std::env::var("KPI_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed);
    // Every kind of landing once, in a random order, then one more at random.
    let mut kinds: Vec<usize> = (0..7).collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    kinds.push(rng.below(7));
    let (first, _) = reports(project.path(), data.path(), Some(store.path())).await;
    let (reference, _) = reports(project.path(), data.path(), None).await;
    assert_same_reports(&first, &reference, "the first build");
    for (step, kind) in kinds.into_iter().enumerate() {
        let what = land_step(kind, step, &mut rng, data.path(), project.path());
        let (stored, engine) = reports(project.path(), data.path(), Some(store.path())).await;
        let (reference, _) = reports(project.path(), data.path(), None).await;
        let activity = engine.rollups().expect("rollups on").activity();
        eprintln!(
            "seed {seed} step {step}: {what}: {} partitions computed, {} reused",
            activity.computed, activity.reused
        );
        assert_same_reports(
            &stored,
            &reference,
            &format!("step {step} ({what}, seed {seed})"),
        );
        assert!(activity.reused > 0, "step {step}: nothing was reused");
    }
}

/// A restart answers from the store without one query; a corrupt data file is detected and
/// rebuilt, with the same numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_store_and_a_corrupt_file_is_rebuilt() {
    let store = TempDir::new().expect("store");
    let project = repo();
    let (first, engine) = reports(&project, demo_data(), Some(store.path())).await;
    let built = engine.rollups().expect("on").activity();
    assert!(built.computed > 100, "the first build computes: {built:?}");
    drop(engine);

    let (again, engine) = reports(&project, demo_data(), Some(store.path())).await;
    let restart = engine.rollups().expect("on").activity();
    assert_eq!(restart.queries, 0, "a restart runs no query: {restart:?}");
    assert_eq!(
        restart.computed, 0,
        "a restart computes nothing: {restart:?}"
    );
    assert!(restart.reused >= built.computed, "{restart:?} vs {built:?}");
    assert_same_reports(&again, &first, "a restart");
    drop(engine);

    let files = parquet_files(&store.path().join("v1/data"));
    let victim = &files[files.len() / 2];
    let mut bytes = std::fs::read(victim).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(victim, &bytes).expect("corrupt");
    let (repaired, engine) = reports(&project, demo_data(), Some(store.path())).await;
    let activity = engine.rollups().expect("on").activity();
    assert_eq!(
        activity.rebuilt_files, 1,
        "the corrupt file is found: {activity:?}"
    );
    assert!(activity.computed > 0, "its partitions are computed again");
    assert_same_reports(&repaired, &first, "a corrupt partition file");
    let (reference, _) = reports(&project, demo_data(), None).await;
    assert_same_reports(&repaired, &reference, "the reference path");
}

/// Two `kpi rollups build` processes on one store at once leave a store that answers every
/// number without computing, equal to the reference path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_building_at_once_leave_one_consistent_store() {
    let store = TempDir::new().expect("store");
    let project = project_copy();
    let data = demo_data().display().to_string();
    let project_arg = project.path().display().to_string();
    let store_arg = store.path().display().to_string();
    let build = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kpi"))
            .args([
                "rollups",
                "build",
                "--project",
                &project_arg,
                "--data",
                &data,
            ])
            .args(["--week", "2026-W46", "--weeks", "2"])
            .env("KPI_ROLLUPS", &store_arg)
            .env("KPI_LOG", "warn")
            .spawn()
            .expect("kpi starts")
    };
    let (mut a, mut b) = (build(), build());
    assert!(a.wait().expect("a").success(), "first build fails");
    assert!(b.wait().expect("b").success(), "second build fails");
    let (stored, engine) = reports(project.path(), demo_data(), Some(store.path())).await;
    let activity = engine.rollups().expect("on").activity();
    assert_eq!(
        activity.computed, 0,
        "both builds stored everything: {activity:?}"
    );
    let (reference, _) = reports(project.path(), demo_data(), None).await;
    assert_same_reports(&stored, &reference, "two concurrent builds");

    let status = kpi(
        &[
            "rollups",
            "status",
            "--project",
            &project_arg,
            "--data",
            &data,
        ],
        &[("KPI_ROLLUPS", &store_arg)],
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("0 over changed or removed files"), "{text}");
}

/// The `/healthz` description of the background build.
async fn build_status(server: &TestServer) -> serde_json::Value {
    server.get_json("/healthz").await["rollups"]["build"].clone()
}

/// GETs a report's JSON with its ETag.
async fn report_json(server: &TestServer, path: &str) -> (String, serde_json::Value) {
    let response = server
        .client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    (etag, response.json().await.expect("json"))
}

fn duplicates_of(report: &serde_json::Value, table: &str) -> i64 {
    report["health"]["duplicates"]
        .as_array()
        .expect("duplicates")
        .iter()
        .find(|d| d["table"] == table)
        .and_then(|d| d["duplicates"].as_i64())
        .unwrap_or_else(|| panic!("no duplicate count for {table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_builds_in_the_background_and_serves_the_last_report_while_refreshing() {
    let data = demo_data_copy();
    let project = project_copy();
    let store = TempDir::new().expect("store");
    let store_path = store.path().display().to_string();
    let server = TestServer::start(
        project.path(),
        &data.path().display().to_string(),
        "reload_interval_ms = 200",
        &[
            ("KPI_ROLLUPS_BACKGROUND", "true"),
            ("KPI_ROLLUPS", &store_path),
        ],
    )
    .await;

    // At start: every dashboard's latest complete week, before anyone asks.
    assert!(
        eventually(600, || async {
            !build_status(&server).await["last"].is_null()
        })
        .await,
        "the first background build never finished"
    );
    let first = build_status(&server).await;
    assert_eq!(first["state"], "idle", "{first}");
    assert_eq!(first["reason"], "start", "{first}");
    assert_eq!(first["last"]["reports"], 2, "{first}");
    assert_eq!(first["last"]["failed"], serde_json::json!([]), "{first}");
    assert!(
        first["last"]["store"]["computed"].as_u64().unwrap_or(0) > 0,
        "{first}"
    );

    // The latest week's page is then answered without a single query.
    let redirect = server
        .client
        .get(format!("{}/reports/weekly-marketing", server.base))
        .send()
        .await
        .expect("request");
    let week = redirect
        .url()
        .path()
        .rsplit('/')
        .next()
        .expect("week")
        .to_string();
    let before = server.get_json("/healthz").await["rollups"]["activity"].clone();
    report_json(&server, &format!("/reports/weekly-marketing/{week}.json")).await;
    let after = server.get_json("/healthz").await["rollups"]["activity"].clone();
    assert_eq!(before["queries"], after["queries"], "the page ran queries");
    assert_eq!(before["computed"], after["computed"]);

    // A week someone opened is kept current too.
    let path = "/reports/weekly-marketing/2026-W45.json";
    let (old_etag, old) = report_json(&server, path).await;
    let old_duplicates = duplicates_of(&old, "crm.lifecycle_changes");

    // A file lands: the newest lifecycle file again, under another name (every row an exact
    // duplicate, so the duplicate count grows by its rows and nothing else may change).
    let folder = data.path().join("crm/lifecycle_changes");
    let newest = parquet_files(&folder).into_iter().last().expect("a file");
    let landed = folder.join("relanded-lifecycle.parquet");
    std::fs::copy(&newest, &landed).expect("land");
    let landed_rows = parquet_rows(&landed);

    // Until the build has it, the page is the last complete report marked as refreshing, or
    // already the new one; never anything else.
    let saw_refreshing = std::sync::atomic::AtomicBool::new(false);
    let rebuilt = eventually(600, || async {
        let (etag, report) = report_json(&server, path).await;
        if etag.ends_with("-refreshing\"") {
            saw_refreshing.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(
                report["banners"][0]
                    .as_str()
                    .is_some_and(|b| b.starts_with("Refreshing:")),
                "{}",
                report["banners"]
            );
            assert_eq!(
                duplicates_of(&report, "crm.lifecycle_changes"),
                old_duplicates
            );
            return false;
        }
        if etag == old_etag {
            return false;
        }
        let status = build_status(&server).await;
        status["state"] == "idle"
            && status["reason"]
                .as_str()
                .is_some_and(|r| r.contains("crm.lifecycle_changes"))
    })
    .await;
    assert!(rebuilt, "the landing was never built in");
    let status = build_status(&server).await;
    assert_eq!(
        status["last"]["reports"], 3,
        "latest weeks and 2026-W45: {status}"
    );
    let (_, new) = report_json(&server, path).await;
    assert_eq!(
        duplicates_of(&new, "crm.lifecycle_changes"),
        old_duplicates + landed_rows,
        "every landed row is an exact duplicate"
    );
    assert_eq!(old["primary"], new["primary"], "duplicates change no KPI");
    // The build takes far longer than the first request after the landing, which must have
    // been answered from the last complete report.
    assert!(
        saw_refreshing.load(std::sync::atomic::Ordering::Relaxed),
        "no request was answered with the last complete report while the build ran"
    );
}

/// `mqls` by channel over 2026-W30..W46, as JSON, and what the store did computing it.
async fn mqls_by_channel(
    project: &Path,
    data: &Path,
    store: Option<&Path>,
) -> (String, kpi::rollup::Activity) {
    let (config, engine) = open(project, data, store).await;
    let registry = kpi::defs::load_and_install(&config, &engine)
        .await
        .expect("definitions load");
    let calendar = config.calendar();
    let week = |label: &str| {
        calendar
            .parse_as(label, kpi::time::Grain::Week, false)
            .expect("week")
    };
    let request = kpi::metrics::SeriesRequest {
        metric: "mqls".into(),
        from: week("2026-W30"),
        to: week("2026-W46"),
        by: vec!["channel".into()],
        filters: Vec::new(),
        compare: Vec::new(),
        attribution: None,
    };
    let series = kpi::metrics::MetricService::new(&registry, &engine, calendar)
        .series(&request)
        .await
        .expect("series");
    let activity = engine
        .rollups()
        .map(|rollups| rollups.activity())
        .unwrap_or_default();
    (
        serde_json::to_string_pretty(&series).expect("json"),
        activity,
    )
}

/// A file of a joined table (`crm.contacts`, joined into `reporting.lifecycle_changes`) counts
/// for the periods its rows reach through the relation, not for every period: contacts no
/// lifecycle change names recompute no MQL partition; contacts who became MQLs in W45, landed
/// again under another lead source (created long before), change W45's breakdown, and the
/// store's numbers follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_tables_file_recomputes_only_the_periods_its_rows_reach() {
    let data = demo_data_copy();
    let project = project_copy();
    let store = TempDir::new().expect("store");
    let (before, first) = mqls_by_channel(project.path(), data.path(), Some(store.path())).await;
    assert!(first.computed > 0, "the first build computes: {first:?}");

    let contacts = parquet_files(&data.path().join("crm/contacts"));
    let newest = contacts.last().expect("a contacts file");
    derive(
        newest,
        &data.path().join("crm/contacts/new-0.parquet"),
        0,
        40,
        Change {
            suffix: Some(("contact_id", "-new".to_string())),
            ..Change::default()
        },
    );
    let (after, activity) = mqls_by_channel(project.path(), data.path(), Some(store.path())).await;
    let (reference, _) = mqls_by_channel(project.path(), data.path(), None).await;
    assert!(
        after == reference,
        "new contacts: the store differs from the reference path"
    );
    assert_eq!(
        activity.computed, 0,
        "contacts no lifecycle change names reach no period: {activity:?}"
    );

    let staging = TempDir::new().expect("staging");
    let written = staging.path().join("again.parquet");
    let copied = duckdb_scalar(&format!(
        "COPY (SELECT contact_id, created_at, 'trade_show' AS lead_source, company_size, \
         industry, region, owner FROM {contacts} WHERE contact_id IN (SELECT contact_id FROM \
         {changes} WHERE to_stage = 'mql' AND changed_at >= TIMESTAMPTZ '2026-11-03 00:00:00+00' \
         AND changed_at < TIMESTAMPTZ '2026-11-08 00:00:00+00')) TO '{}' (FORMAT parquet)",
        written.display(),
        contacts = duckdb_table(data.path(), "crm.contacts"),
        changes = duckdb_table(data.path(), "crm.lifecycle_changes"),
    ));
    assert!(copied.parse::<i64>().expect("rows") > 0, "W45 has MQLs");
    land(
        &data.path().join("crm/contacts/again-1.parquet"),
        &std::fs::read(&written).expect("written"),
    );
    let (after, activity) = mqls_by_channel(project.path(), data.path(), Some(store.path())).await;
    let (reference, _) = mqls_by_channel(project.path(), data.path(), None).await;
    assert!(reference != before, "the landing changes W45's breakdown");
    assert!(
        after == reference,
        "contacts landed again under another lead source: the store differs from the reference"
    );
    assert!(activity.computed > 0, "W45 is recomputed: {activity:?}");
}

/// Wide misses over more landed bytes than `rollups.run_kib` are computed in runs of buckets
/// (joined tables read with filter pushdown); the numbers are the reference path's whatever
/// the runs. With 64 KiB runs, the demo's first build runs more queries than with the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_buckets_give_the_reference_numbers() {
    let data = demo_data_copy();
    let project = project_copy();
    let (small, default) = (
        TempDir::new().expect("store"),
        TempDir::new().expect("store"),
    );
    let runs = [("KPI_ROLLUPS_RUN_KIB", "64")];
    let (in_runs, engine) =
        reports_with(project.path(), data.path(), Some(small.path()), &runs).await;
    let (whole, whole_engine) = reports(project.path(), data.path(), Some(default.path())).await;
    let (reference, _) = reports(project.path(), data.path(), None).await;
    assert_same_reports(&in_runs, &reference, "64 KiB runs");
    assert_same_reports(&whole, &reference, "default runs");
    let (small, whole) = (
        engine.rollups().expect("on").activity(),
        whole_engine.rollups().expect("on").activity(),
    );
    assert!(
        small.queries > whole.queries + 10,
        "64 KiB runs split the wide misses: {small:?} against {whole:?}"
    );
}

/// Takes the rows of the last UTC day of `column` out of the latest file of `folder` (that file
/// rewritten without them) and returns them: the lake the evening before a daily export.
fn hold_back_last_day(folder: &Path, column: &str) -> RecordBatch {
    let micros = |batch: &RecordBatch| -> arrow::array::Int64Array {
        let times = batch.column(batch.schema().index_of(column).expect("column"));
        let ints = arrow::compute::cast(times, &DataType::Int64).expect("ints");
        ints.as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("i64")
            .clone()
    };
    let files = parquet_files(folder);
    let latest = files
        .iter()
        .max_by_key(|path| arrow::compute::max(&micros(&read_batch(path))).unwrap_or(i64::MIN))
        .expect("a file");
    let all = read_batch(latest);
    let times = micros(&all);
    let last = arrow::compute::max(&times).expect("rows");
    let day = last - last.rem_euclid(86_400_000_000);
    let held: arrow::array::BooleanArray = times.iter().map(|t| t.map(|t| t >= day)).collect();
    let kept = arrow::compute::not(&held).expect("not");
    let keep = arrow::compute::filter_record_batch(&all, &kept).expect("keep");
    land(latest, &parquet_bytes(&keep));
    arrow::compute::filter_record_batch(&all, &held).expect("held")
}

/// A day landing after the stored rows of its month extends the month's distinct rows (the
/// stored count plus the day's own distinct rows, exact duplicates within the day included)
/// instead of de-duplicating the month again, with every number equal to the reference path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_landing_after_a_months_stored_rows_extends_its_distinct_count() {
    let data = demo_data_copy();
    let project = project_copy();
    let store = TempDir::new().expect("store");
    let events = data.path().join("analytics/events");
    let day = hold_back_last_day(&events, "occurred_at");
    assert!(day.num_rows() > 0, "the last day has events");
    let (first, engine) = reports(project.path(), data.path(), Some(store.path())).await;
    assert_eq!(engine.rollups().expect("rollups").activity().extended, 0);
    let before = duplicates_of(
        &serde_json::from_str(&first[0]).expect("json"),
        "analytics.events",
    );

    // The day lands with every row twice: each copy is an exact duplicate within the file.
    let twice = arrow::compute::concat_batches(&day.schema(), [&day, &day]).expect("twice");
    land(&events.join("day-landed.parquet"), &parquet_bytes(&twice));

    let (stored, engine) = reports(project.path(), data.path(), Some(store.path())).await;
    let (reference, _) = reports(project.path(), data.path(), None).await;
    assert_same_reports(&stored, &reference, "the day's landing");
    let activity = engine.rollups().expect("rollups").activity();
    assert!(
        activity.extended >= 1,
        "the month the day landed in was counted again, not extended: {activity:?}"
    );
    let after = duplicates_of(
        &serde_json::from_str(&stored[0]).expect("json"),
        "analytics.events",
    );
    assert_eq!(
        after,
        before + day.num_rows() as i64,
        "each landed row's second copy is a duplicate, nothing else"
    );
}
