//! `kpi demo`: a deterministic, realistic B2B marketing data set landed as Parquet.
//!
//! The same seed, end date, week count and scale give byte-identical files. The generator is a
//! small simulation, day by day in the reporting time zone: ad campaigns (Google, Meta,
//! LinkedIn) that start and stop, spend their budgets at platform-specific costs and bring
//! clicks; clicks and organic traffic become web sessions from a pool of returning visitors;
//! sessions carry events; a form submit identifies a visitor as a CRM contact, who may move
//! through MQL, SQL and opportunity to a won or lost deal; contacts receive a weekly newsletter
//! and nurture emails, whose clicks come back as email sessions.
//!
//! Planted mess, on purpose (SPEC section 3): exact duplicate rows in `ads.campaign_daily` and
//! `analytics.sessions`; UTM values in inconsistent case; sessions that are never identified;
//! ad-platform clicks that exceed analytics sessions by a platform-specific gap; one late-arriving
//! day of Meta rows in its own file; LinkedIn's last day not landed yet.
//!
//! Files: `ads/campaign_daily/month=YYYY-MM/part-0.parquet` (Hive-partitioned by month),
//! monthly files for sessions, events and email sends, one file per CRM table. Each file is
//! written under a temporary name and renamed, so a reader never sees half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{Datelike, Duration, NaiveDate};
use chrono_tz::Tz;

use crate::error::{Error, Result};

mod rng;
mod simulate;
mod world;
mod write;

use simulate::Simulation;
use write::Writer;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Folder to write into.
    pub out: PathBuf,
    /// Random seed.
    pub seed: u64,
    /// Last day of data (inclusive), in the reporting time zone.
    pub end: NaiveDate,
    /// Number of weeks of history.
    pub weeks: u32,
    /// Volume multiplier (1.0 is the default size).
    pub scale: f64,
    /// Reporting time zone (days are cut here).
    pub time_zone: Tz,
    /// Write into a non-empty folder (replacing the demo tables).
    pub force: bool,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// Per table: SQL name, rows, files, bytes.
    pub tables: Vec<(String, usize, usize, u64)>,
}

/// The seven tables, in SQL naming.
pub const DEMO_TABLES: [&str; 7] = [
    "ads.campaign_daily",
    "analytics.sessions",
    "analytics.events",
    "crm.contacts",
    "crm.lifecycle_changes",
    "crm.opportunities",
    "email.sends",
];

/// Returns the default end date: the last Sunday strictly before `today`, so the newest
/// ISO week of the demo is complete.
pub fn default_end(today: NaiveDate) -> NaiveDate {
    let back = today.weekday().num_days_from_monday() as i64 + 1;
    today - Duration::days(back)
}

/// Generates the demo data set; `progress` receives one line per month written.
pub fn generate(options: &DemoOptions, progress: &mut dyn FnMut(&str)) -> Result<DemoSummary> {
    if options.weeks == 0 || options.weeks > 520 {
        return Err(Error::input(
            "demo",
            format!("--weeks must be between 1 and 520, got {}", options.weeks),
        ));
    }
    if !(options.scale > 0.0 && options.scale <= 1000.0) {
        return Err(Error::input(
            "demo",
            format!(
                "--scale must be above 0 and at most 1000, got {}",
                options.scale
            ),
        ));
    }
    prepare_out_dir(&options.out, options.force)?;
    let started = Instant::now();
    let mut sim = Simulation::new(options);
    let mut writer = Writer {
        out: options.out.clone(),
        summary: BTreeMap::new(),
    };
    let start = options.end - Duration::days(options.weeks as i64 * 7 - 1);
    let total_days = (options.end - start).num_days() + 1;
    let months = month_starts(start, options.end);
    for (index, month) in months.iter().enumerate() {
        let month_end = next_month(*month) - Duration::days(1);
        let mut day = (*month).max(start);
        while day <= month_end.min(options.end) {
            let t = (day - start).num_days() as f64 / total_days as f64;
            sim.simulate_day(day, t);
            day += Duration::days(1);
        }
        let label = month.format("%Y-%m").to_string();
        let sessions = sim.sessions.len();
        sim.flush_month(&label, &mut writer)?;
        progress(&format!(
            "[{:>2}/{}] {label}: {sessions} sessions, {} contacts so far ({:.1}s)",
            index + 1,
            months.len(),
            sim.contacts.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    sim.finish(&mut writer)?;
    let tables = DEMO_TABLES
        .iter()
        .map(|name| {
            let (rows, files, bytes) = writer.summary.get(*name).copied().unwrap_or_default();
            (name.to_string(), rows, files, bytes)
        })
        .collect();
    Ok(DemoSummary { tables })
}

fn prepare_out_dir(out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        let non_empty = std::fs::read_dir(out)?.next().is_some();
        if non_empty && !force {
            return Err(Error::input(
                "demo_out_not_empty",
                format!(
                    "{} is not empty; choose another --out or pass --force to replace the demo tables in it",
                    out.display()
                ),
            ));
        }
        for table in DEMO_TABLES {
            let folder = out.join(table.replace('.', "/"));
            if folder.exists() {
                std::fs::remove_dir_all(&folder)?;
            }
        }
    }
    std::fs::create_dir_all(out)?;
    Ok(())
}

fn month_starts(start: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
    let mut months = Vec::new();
    let mut month = NaiveDate::from_ymd_opt(start.year(), start.month(), 1).unwrap_or(start);
    while month <= end {
        months.push(month);
        month = next_month(month);
    }
    months
}

fn next_month(month: NaiveDate) -> NaiveDate {
    let (year, m) = if month.month() == 12 {
        (month.year() + 1, 1)
    } else {
        (month.year(), month.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, m, 1).unwrap_or(month)
}

/// Writes the summary table shown after `kpi demo`.
pub fn print_summary(summary: &DemoSummary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<24} {:>10} {:>6} {:>10}",
        "table", "rows", "files", "KiB"
    )?;
    for (name, rows, files, bytes) in &summary.tables {
        writeln!(out, "{name:<24} {rows:>10} {files:>6} {:>10}", bytes / 1024)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::rng::Rng;
    use super::simulate::local_micros;
    use super::*;
    use chrono::NaiveTime;

    #[test]
    fn default_end_is_the_previous_sunday() {
        let saturday = NaiveDate::from_ymd_opt(2026, 11, 21).expect("date");
        assert_eq!(
            default_end(saturday),
            NaiveDate::from_ymd_opt(2026, 11, 15).expect("date")
        );
        let monday = NaiveDate::from_ymd_opt(2026, 11, 16).expect("date");
        assert_eq!(
            default_end(monday),
            NaiveDate::from_ymd_opt(2026, 11, 15).expect("date")
        );
        let sunday = NaiveDate::from_ymd_opt(2026, 11, 22).expect("date");
        assert_eq!(
            default_end(sunday),
            NaiveDate::from_ymd_opt(2026, 11, 15).expect("date")
        );
    }

    #[test]
    fn rng_is_stable() {
        let mut rng = Rng(42);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let mut again = Rng(42);
        assert_eq!(first, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_eq!(first[0], 13_679_457_532_755_275_413);
    }

    #[test]
    fn local_times_respect_dst() {
        let tz: Tz = chrono_tz::America::New_York;
        // 2026-03-08 02:30 does not exist in New York; it becomes 03:30 EDT = 07:30 UTC.
        let day = NaiveDate::from_ymd_opt(2026, 3, 8).expect("date");
        let micros = local_micros(tz, day, NaiveTime::from_hms_opt(2, 30, 0).expect("time"));
        assert_eq!(
            micros,
            NaiveDate::from_ymd_opt(2026, 3, 8)
                .expect("d")
                .and_hms_opt(7, 30, 0)
                .expect("t")
                .and_utc()
                .timestamp_micros()
        );
    }
}
