//! Resolver tests over a tiny landed fixture: two sources, one table each.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Date32Array, Decimal128Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::*;
use crate::config::Overrides;

const CONFIG: &str = "[sources.shop]\nkind = \"crm\"\n[sources.web]\nkind = \"analytics\"\n";

fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
}

/// A project folder with data under `data/`, definitions from `files`.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().expect("dir");
    let orders = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("amount", DataType::Decimal128(12, 2), false),
        ])),
        vec![
            Arc::new(Date32Array::from(vec![20_000, 20_001])),
            Arc::new(StringArray::from(vec!["NA", "EMEA"])),
            Arc::new(
                Decimal128Array::from(vec![1_050, 2_000])
                    .with_precision_and_scale(12, 2)
                    .expect("decimal"),
            ),
        ],
    )
    .expect("batch");
    write_parquet(&dir.path().join("data/shop/orders/part-0.parquet"), &orders);
    let visits = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, false),
            Field::new("page", DataType::Utf8, false),
        ])),
        vec![
            Arc::new(Date32Array::from(vec![20_000])),
            Arc::new(StringArray::from(vec!["/"])),
        ],
    )
    .expect("batch");
    write_parquet(&dir.path().join("data/web/visits/part-0.parquet"), &visits);
    std::fs::write(dir.path().join("kpi.toml"), CONFIG).expect("config");
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }
    dir
}

async fn resolve(dir: &Path) -> std::result::Result<Registry, Vec<Diagnostic>> {
    let config = Arc::new(Config::load(dir, &Overrides::default()).expect("config"));
    let engine = Engine::try_new(Arc::clone(&config)).expect("engine");
    engine.refresh().await.expect("refresh");
    load(&config, &engine).await
}

fn rendered(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

const REVENUE: &str = "[[metric]]\nname = \"revenue\"\nsource = \"shop\"\nunit = \"currency\"\nmeasure = \"SUM(amount)\"\ntable = \"reporting.orders_clean\"\ntime_column = \"day\"\ndimensions = [\"region\"]\n";

#[tokio::test]
async fn views_resolve_in_dependency_order_whatever_the_file_order() {
    let dir = project(&[
        (
            "queries/a_orders_na.sql",
            "SELECT * FROM reporting.orders_clean WHERE region = 'NA'",
        ),
        (
            "queries/orders_clean.sql",
            "SELECT DISTINCT * FROM shop.orders",
        ),
        ("metrics/shop.toml", REVENUE),
        (
            "dashboards/weekly.toml",
            "title = \"Weekly\"\nprimary = [\"revenue\"]\n",
        ),
    ]);
    let registry = resolve(dir.path())
        .await
        .unwrap_or_else(|p| panic!("{}", rendered(&p)));
    let order: Vec<&str> = registry
        .views
        .iter()
        .map(|view| view.name.as_str())
        .collect();
    assert_eq!(order, vec!["orders_clean", "a_orders_na"]);
    let revenue = &registry.metrics["revenue"];
    assert_eq!(revenue.line, 2);
    assert_eq!(revenue.hash.len(), 16);
    assert_eq!(
        registry.dashboards["weekly"].primary,
        vec!["revenue".to_string()]
    );
}

#[tokio::test]
async fn the_hash_changes_with_the_definition_only() {
    let first = project(&[
        ("queries/orders_clean.sql", "SELECT * FROM shop.orders"),
        ("metrics/shop.toml", REVENUE),
    ]);
    let reformatted = REVENUE.replace("unit = \"currency\"\n", "unit = \"currency\"   # money\n");
    let second = project(&[
        ("queries/orders_clean.sql", "SELECT * FROM shop.orders"),
        ("metrics/shop.toml", &reformatted),
    ]);
    let changed = REVENUE.replace("SUM(amount)", "SUM(amount) * 2");
    let third = project(&[
        ("queries/orders_clean.sql", "SELECT * FROM shop.orders"),
        ("metrics/shop.toml", &changed),
    ]);
    let hash = |registry: Registry| registry.metrics["revenue"].hash.clone();
    let a = hash(resolve(first.path()).await.expect("valid"));
    let b = hash(resolve(second.path()).await.expect("valid"));
    let c = hash(resolve(third.path()).await.expect("valid"));
    assert_eq!(a, b, "comments and spacing do not change the definition");
    assert_ne!(a, c);
}

#[tokio::test]
async fn reading_another_source_breaks_the_source_of_truth() {
    let dir = project(&[
        (
            "queries/orders_clean.sql",
            "SELECT o.* FROM shop.orders o JOIN web.visits v ON v.day = o.day",
        ),
        ("metrics/shop.toml", REVENUE),
    ]);
    let problems = resolve(dir.path()).await.expect_err("mixes sources");
    let text = rendered(&problems);
    assert!(
        text.contains("metrics/shop.toml:6: metric `revenue` has source of truth `shop` but `reporting.orders_clean` reads source(s) web"),
        "{text}"
    );
}

#[tokio::test]
async fn every_problem_is_reported_with_its_line() {
    let metrics = "[[metric]]\nname = \"revenue\"\nsource = \"shopp\"\ntier = \"top\"\nmeasure = \"SUM(amount)\"\ntable = \"shop.orders\"\ntime_column = \"region\"\n\n[[metric]]\nname = \"share\"\nsource = \"shop\"\nkind = \"ratio\"\nnumerator = \"revenue\"\ndenominator = \"missing\"\n";
    let dir = project(&[
        ("metrics/shop.toml", metrics),
        (
            "dashboards/weekly.toml",
            "title = \"Weekly\"\nprimary = [\"revenue\", \"ghost\"]\n",
        ),
        ("dashboards/Bad Name.toml", "title = \"x\"\n"),
        ("dashboards/extra.toml", "title = \"x\"\ncolour = \"red\"\n"),
        ("queries/bad.sql", "SELECT * FROM shop.orderz"),
    ]);
    let problems = resolve(dir.path()).await.expect_err("invalid");
    let text = rendered(&problems);
    for expected in [
        "metrics/shop.toml:3: unknown source `shopp`",
        "metrics/shop.toml:4: `tier` is `top`",
        "metrics/shop.toml:7: time_column `region` of `shop.orders` is Utf8",
        "metrics/shop.toml:14: metric `share` refers to unknown metric `missing`",
        "dashboards/weekly.toml:2: dashboard `weekly` uses unknown metric `ghost`",
        "dashboards/Bad Name.toml:1: dashboard name `Bad Name` is not URL-safe",
        "dashboards/extra.toml:2: unknown field `colour`",
        "queries/bad.sql:1: unknown table `shop.orderz`",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

/// A subquery plans as SQL, but a metric's pieces are expressions over one relation: `kpi
/// check` says so at the line, instead of the metric failing when it is asked.
#[tokio::test]
async fn a_subquery_in_a_measure_or_filter_is_refused_at_its_line() {
    let metrics = "[[metric]]\nname = \"big_regions\"\nsource = \"shop\"\nmeasure = \"SUM(amount)\"\nfilter = \"region IN (SELECT region FROM shop.orders WHERE amount > 15)\"\ntable = \"shop.orders\"\ntime_column = \"day\"\n\n[[metric]]\nname = \"above_min\"\nsource = \"shop\"\nmeasure = \"SUM(amount) - (SELECT MIN(amount) FROM shop.orders)\"\ntable = \"shop.orders\"\ntime_column = \"day\"\n";
    let dir = project(&[("metrics/shop.toml", metrics)]);
    let problems = resolve(dir.path()).await.expect_err("invalid");
    let text = rendered(&problems);
    for expected in [
        "metrics/shop.toml:5: filter of metric `big_regions` uses a subquery",
        "metrics/shop.toml:12: measure of metric `above_min` uses a subquery",
        "write the subquery into a view under queries/",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert_eq!(problems.len(), 2, "{text}");
}

#[tokio::test]
async fn alerts_are_validated_like_every_definition() {
    let good = "title = \"Weekly\"\nprimary = [\"revenue\"]\n\n[[alert]]\nname = \"revenue-drop\"\nmetric = \"revenue\"\nfilter = { region = \"NA\" }\nchange_below = -0.2\nagainst = \"year_ago\"\nmin_baseline = 10\nwebhook = \"https://hooks.example/x\"\nto = [\"a@b.example\"]\n";
    let dir = project(&[
        (
            "queries/orders_clean.sql",
            "SELECT DISTINCT * FROM shop.orders",
        ),
        ("metrics/shop.toml", REVENUE),
        ("dashboards/weekly.toml", good),
    ]);
    let registry = resolve(dir.path())
        .await
        .unwrap_or_else(|p| panic!("{}", rendered(&p)));
    let alert = &registry.dashboards["weekly"].alerts[0];
    assert_eq!(alert.filter, vec![("region".to_string(), "NA".to_string())]);
    assert_eq!(
        alert.condition,
        crate::defs::AlertCondition::ChangeBelow {
            ratio: -0.2,
            against: crate::defs::Comparison::YearAgo,
            min_baseline: 10.0
        }
    );

    let bad = "title = \"Weekly\"\nprimary = [\"revenue\"]\n\n[[alert]]\nname = \"two\"\nmetric = \"revenue\"\nbelow = 1\nabove = 2\nto = [\"a@b.example\"]\n\n[[alert]]\nname = \"nowhere\"\nmetric = \"ghost\"\nno_data = true\n\n[[alert]]\nname = \"two\"\nmetric = \"revenue\"\nfilter = { colour = \"red\" }\nbehind_target = 0.9\nagainst = \"previous\"\nwebhook = \"ftp://x\"\n";
    let dir = project(&[
        (
            "queries/orders_clean.sql",
            "SELECT DISTINCT * FROM shop.orders",
        ),
        ("metrics/shop.toml", REVENUE),
        ("dashboards/weekly.toml", bad),
    ]);
    let text = rendered(&resolve(dir.path()).await.expect_err("invalid"));
    for expected in [
        "dashboards/weekly.toml:5: alert `two` needs exactly one condition, found 2",
        "dashboards/weekly.toml:13: alert `nowhere`: no metric named `ghost`",
        "dashboards/weekly.toml:12: alert `nowhere` has nowhere to deliver",
        "dashboards/weekly.toml:17: alert `two` is declared twice",
        "dashboards/weekly.toml:18: alert `two`: metric `revenue` has no dimension `colour`",
        "dashboards/weekly.toml:17: alert `two`: `against` and `min_baseline` apply to change_below and change_above only",
        "dashboards/weekly.toml:22: alert `two`: webhook `ftp://x` is not an http(s) URL",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}
