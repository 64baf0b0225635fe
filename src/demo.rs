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

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

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

/// SplitMix64: tiny, fast, and stable forever (the demo must not change with a crate update).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    /// Approximately normal noise: mean 1, given spread.
    fn noise(&mut self, spread: f64) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum::<f64>() - 2.0;
        (1.0 + spread * sum * 1.7).max(0.05)
    }

    /// Exponential with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Rounds `x` to an integer randomly so the expectation is exact.
    fn round(&mut self, x: f64) -> u64 {
        let floor = x.floor();
        floor as u64 + u64::from(self.chance(x - floor))
    }

    fn pick<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let total: f64 = items.iter().map(|(_, w)| w).sum();
        let mut roll = self.unit() * total;
        for (item, weight) in items {
            if roll < *weight {
                return *item;
            }
            roll -= weight;
        }
        items[items.len() - 1].0
    }
}

struct Campaign {
    platform: &'static str,
    id: &'static str,
    name: &'static str,
    channel: &'static str,
    /// Active between these fractions of the period.
    active: (f64, f64),
    daily_budget: f64,
    cpc: f64,
    ctr: f64,
}

const CAMPAIGNS: [Campaign; 10] = [
    Campaign {
        platform: "google_ads",
        id: "gads-brand",
        name: "Brand Search",
        channel: "paid_search",
        active: (0.0, 1.0),
        daily_budget: 120.0,
        cpc: 1.6,
        ctr: 0.082,
    },
    Campaign {
        platform: "google_ads",
        id: "gads-nonbrand",
        name: "Non-brand Search",
        channel: "paid_search",
        active: (0.0, 1.0),
        daily_budget: 420.0,
        cpc: 4.4,
        ctr: 0.031,
    },
    Campaign {
        platform: "google_ads",
        id: "gads-competitor",
        name: "Competitor Terms",
        channel: "paid_search",
        active: (0.38, 1.0),
        daily_budget: 150.0,
        cpc: 6.1,
        ctr: 0.024,
    },
    Campaign {
        platform: "google_ads",
        id: "gads-pmax",
        name: "Performance Max Test",
        channel: "paid_search",
        active: (0.55, 0.85),
        daily_budget: 200.0,
        cpc: 2.3,
        ctr: 0.012,
    },
    Campaign {
        platform: "meta_ads",
        id: "meta-retargeting",
        name: "Retargeting",
        channel: "paid_social",
        active: (0.0, 1.0),
        daily_budget: 90.0,
        cpc: 1.1,
        ctr: 0.011,
    },
    Campaign {
        platform: "meta_ads",
        id: "meta-prospecting",
        name: "Prospecting Lookalikes",
        channel: "paid_social",
        active: (0.0, 0.52),
        daily_budget: 160.0,
        cpc: 1.4,
        ctr: 0.008,
    },
    Campaign {
        platform: "meta_ads",
        id: "meta-webinar",
        name: "Webinar Series",
        channel: "paid_social",
        active: (0.30, 0.46),
        daily_budget: 110.0,
        cpc: 1.2,
        ctr: 0.009,
    },
    Campaign {
        platform: "linkedin_ads",
        id: "li-abm",
        name: "ABM Enterprise",
        channel: "paid_social",
        active: (0.0, 1.0),
        daily_budget: 380.0,
        cpc: 9.5,
        ctr: 0.0055,
    },
    Campaign {
        platform: "linkedin_ads",
        id: "li-leadgen",
        name: "Lead Gen Forms",
        channel: "paid_social",
        active: (0.20, 1.0),
        daily_budget: 280.0,
        cpc: 8.2,
        ctr: 0.0068,
    },
    Campaign {
        platform: "linkedin_ads",
        id: "li-retargeting",
        name: "Website Retargeting",
        channel: "paid_social",
        active: (0.50, 1.0),
        daily_budget: 110.0,
        cpc: 7.0,
        ctr: 0.0074,
    },
];

/// Share of ad clicks that arrive as analytics sessions (the rest are bots, bounces before the
/// tag fires, consent refusals): the gap the data-health section reports.
fn session_match_rate(platform: &str) -> f64 {
    match platform {
        "google_ads" => 0.93,
        "meta_ads" => 0.71,
        _ => 0.84,
    }
}

/// Organic channels: (channel, sessions per day at scale 1, utm_source, utm_medium).
const ORGANIC: [(&str, f64, Option<&str>, Option<&str>); 4] = [
    ("organic_search", 130.0, None, None),
    ("direct", 75.0, None, None),
    ("referral", 22.0, Some("g2"), Some("referral")),
    ("organic_social", 18.0, Some("linkedin"), Some("social")),
];

/// Probability a session of a channel has a form submit.
fn form_rate(channel: &str, platform: Option<&str>) -> f64 {
    match (channel, platform) {
        ("paid_search", _) => 0.034,
        ("paid_social", Some("linkedin_ads")) => 0.041,
        ("paid_social", _) => 0.013,
        ("organic_search", _) => 0.024,
        ("direct", _) => 0.030,
        ("referral", _) => 0.036,
        ("email", _) => 0.028,
        _ => 0.010,
    }
}

/// Chance a new lead becomes an MQL, by channel.
fn mql_rate(channel: &str) -> f64 {
    match channel {
        "paid_search" => 0.42,
        "paid_social" => 0.30,
        "organic_search" => 0.38,
        "direct" => 0.45,
        "referral" => 0.50,
        "email" => 0.40,
        "event" => 0.55,
        "outbound" => 0.35,
        _ => 0.25,
    }
}

const PAGES: [(&str, f64); 8] = [
    ("/", 30.0),
    ("/pricing", 10.0),
    ("/product", 14.0),
    ("/blog/attribution-guide", 12.0),
    ("/blog/weekly-reporting", 9.0),
    ("/customers", 6.0),
    ("/webinars", 5.0),
    ("/demo", 4.0),
];
const DEVICES: [(&str, f64); 3] = [("desktop", 62.0), ("mobile", 33.0), ("tablet", 5.0)];
const COUNTRIES: [(&str, f64); 8] = [
    ("US", 52.0),
    ("GB", 10.0),
    ("DE", 8.0),
    ("CA", 7.0),
    ("FR", 5.0),
    ("IN", 7.0),
    ("AU", 5.0),
    ("BR", 6.0),
];
const COMPANY_SIZES: [(&str, f64); 5] = [
    ("1-10", 18.0),
    ("11-50", 27.0),
    ("51-200", 26.0),
    ("201-1000", 18.0),
    ("1000+", 11.0),
];
const INDUSTRIES: [(&str, f64); 6] = [
    ("software", 30.0),
    ("financial_services", 15.0),
    ("healthcare", 12.0),
    ("retail", 14.0),
    ("manufacturing", 16.0),
    ("education", 13.0),
];
const OWNERS: [&str; 5] = [
    "avery.lee",
    "jordan.kim",
    "sam.patel",
    "riley.chen",
    "morgan.diaz",
];

#[derive(Clone)]
struct Visitor {
    anonymous_id: String,
    contact_id: Option<String>,
}

#[derive(Clone)]
struct AdRow {
    date: i32,
    platform: &'static str,
    campaign_id: &'static str,
    campaign_name: &'static str,
    channel: &'static str,
    impressions: i64,
    clicks: i64,
    spend_cents: i128,
    platform_conversions: i64,
}

#[derive(Clone)]
struct SessionRow {
    session_id: String,
    anonymous_id: String,
    contact_id: Option<String>,
    started_at: i64,
    landing_page: &'static str,
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    utm_content: Option<String>,
    channel: &'static str,
    device: &'static str,
    country: &'static str,
    pageviews: i32,
}

struct EventRow {
    event_id: String,
    session_id: String,
    anonymous_id: String,
    contact_id: Option<String>,
    occurred_at: i64,
    name: &'static str,
    page: &'static str,
}

struct ContactRow {
    contact_id: String,
    created_at: i64,
    lead_source: String,
    company_size: &'static str,
    industry: &'static str,
    region: &'static str,
    owner: &'static str,
}

struct StageRow {
    contact_id: String,
    changed_at: i64,
    from_stage: Option<&'static str>,
    to_stage: &'static str,
}

struct OpportunityRow {
    opportunity_id: String,
    contact_id: String,
    created_at: i64,
    closed_at: Option<i64>,
    status: &'static str,
    amount_cents: i128,
}

struct SendRow {
    send_id: String,
    email_campaign_id: String,
    contact_id: String,
    sent_at: i64,
    delivered: bool,
    opened_at: Option<i64>,
    clicked_at: Option<i64>,
    unsubscribed: bool,
}

struct Simulation {
    rng: Rng,
    tz: Tz,
    scale: f64,
    end: NaiveDate,
    /// Exclusive end of the data, as an instant (micros): nothing happens after it.
    horizon: i64,
    /// Recent visitors; `visitor_base` is the number evicted from the front, so a visitor's
    /// global index stays valid while it is in the pool (O(1) eviction).
    visitors: VecDeque<Visitor>,
    visitor_base: usize,
    contact_visitor: BTreeMap<String, usize>,
    subscribed_index: BTreeMap<String, usize>,
    subscribed: Vec<(String, bool)>,
    pending_nurture: Vec<(i64, String, u8)>,
    email_clicks: Vec<(i64, String)>,
    next_id: BTreeMap<&'static str, u64>,
    ads: Vec<AdRow>,
    late_ads: Vec<AdRow>,
    late_day: NaiveDate,
    sessions: Vec<SessionRow>,
    events: Vec<EventRow>,
    sends: Vec<SendRow>,
    contacts: Vec<ContactRow>,
    stages: Vec<StageRow>,
    opportunities: Vec<OpportunityRow>,
}

impl Simulation {
    fn new(options: &DemoOptions) -> Self {
        let horizon_day = options.end + Duration::days(1);
        Self {
            rng: Rng(options.seed ^ 0x6b70_6920_6465_6d6f),
            tz: options.time_zone,
            scale: options.scale,
            end: options.end,
            horizon: local_micros(options.time_zone, horizon_day, NaiveTime::MIN),
            visitors: VecDeque::new(),
            visitor_base: 0,
            contact_visitor: BTreeMap::new(),
            subscribed_index: BTreeMap::new(),
            subscribed: Vec::new(),
            pending_nurture: Vec::new(),
            email_clicks: Vec::new(),
            next_id: BTreeMap::new(),
            ads: Vec::new(),
            late_ads: Vec::new(),
            late_day: options.end - Duration::days(9),
            sessions: Vec::new(),
            events: Vec::new(),
            sends: Vec::new(),
            contacts: Vec::new(),
            stages: Vec::new(),
            opportunities: Vec::new(),
        }
    }

    fn id(&mut self, prefix: &'static str) -> String {
        let counter = self.next_id.entry(prefix).or_insert(0);
        *counter += 1;
        format!("{prefix}{:07}", *counter)
    }

    /// Traffic multiplier of a day: growth, weekly rhythm, seasons and holidays.
    fn day_factor(day: NaiveDate, t: f64) -> f64 {
        let weekday = match day.weekday() {
            Weekday::Mon => 1.06,
            Weekday::Tue => 1.10,
            Weekday::Wed => 1.08,
            Weekday::Thu => 1.02,
            Weekday::Fri => 0.86,
            Weekday::Sat => 0.46,
            Weekday::Sun => 0.50,
        };
        let season =
            1.0 + 0.08 * ((day.ordinal() as f64 / 365.25) * std::f64::consts::TAU - 1.2).sin();
        let (month, dom) = (day.month(), day.day());
        let holiday = if (month == 12 && dom >= 22) || (month == 1 && dom <= 2) {
            0.42
        } else if NaiveDate::from_weekday_of_month_opt(day.year(), 11, Weekday::Thu, 4)
            .is_some_and(|thanksgiving| (0..4).contains(&(day - thanksgiving).num_days()))
        {
            0.62
        } else if month == 7 && dom == 4 {
            0.6
        } else {
            1.0
        };
        (1.0 + 0.3 * t) * weekday * season * holiday
    }

    fn time_of_day(&mut self) -> NaiveTime {
        // Business hours dominate: a mixture of a day-time bump and a flat background.
        let hours = if self.rng.chance(0.8) {
            (8.0 + 10.0 * (self.rng.unit() + self.rng.unit()) / 2.0).min(23.99)
        } else {
            self.rng.unit() * 24.0
        };
        let seconds = (hours * 3600.0) as u32;
        NaiveTime::from_num_seconds_from_midnight_opt(seconds.min(86_399), 0)
            .unwrap_or(NaiveTime::MIN)
    }

    fn simulate_day(&mut self, day: NaiveDate, t: f64) {
        let factor = Self::day_factor(day, t);
        let date = (day - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(day)).num_days() as i32;

        // Ads and the paid sessions they bring.
        for campaign in &CAMPAIGNS {
            if t < campaign.active.0 || t >= campaign.active.1 {
                continue;
            }
            if campaign.platform == "linkedin_ads" && day == self.end {
                continue; // LinkedIn's export for the last day has not landed yet.
            }
            let spend = campaign.daily_budget * self.scale * factor.sqrt() * self.rng.noise(0.08);
            let cpc = campaign.cpc * self.rng.noise(0.1);
            let clicks = self.rng.round(spend / cpc) as i64;
            let ctr = campaign.ctr * self.rng.noise(0.1);
            let impressions = self.rng.round(clicks as f64 / ctr) as i64;
            let spend_cents = (spend * 100.0).round() as i128;
            let conversion_noise = self.rng.noise(0.3);
            let platform_conversions =
                self.rng.round(clicks as f64 * 0.045 * conversion_noise) as i64;
            let row = AdRow {
                date,
                platform: campaign.platform,
                campaign_id: campaign.id,
                campaign_name: campaign.name,
                channel: campaign.channel,
                impressions,
                clicks,
                spend_cents,
                platform_conversions,
            };
            let duplicate = self.rng.chance(0.006);
            if campaign.platform == "meta_ads" && day == self.late_day {
                self.late_ads.push(row);
            } else {
                if duplicate {
                    self.ads.push(row.clone());
                }
                self.ads.push(row);
            }
            let sessions = self
                .rng
                .round(clicks as f64 * session_match_rate(campaign.platform))
                as usize;
            for _ in 0..sessions {
                let (source, medium) = match campaign.platform {
                    "google_ads" => ("google", "cpc"),
                    "meta_ads" => ("facebook", "paid_social"),
                    _ => ("linkedin", "paid_social"),
                };
                let source = self.messy_case(source);
                let medium = self.messy_case(medium);
                let utm_campaign = self.messy_case(campaign.id);
                let content = format!("ad-{}", 1 + self.rng.below(4));
                self.session(
                    day,
                    campaign.channel,
                    Some(campaign.platform),
                    Some(source),
                    Some(medium),
                    Some(utm_campaign),
                    Some(content),
                    None,
                );
            }
        }

        // Organic traffic.
        for (channel, per_day, source, medium) in ORGANIC {
            let noise = self.rng.noise(0.1);
            let count = self.rng.round(per_day * self.scale * factor * noise) as usize;
            for _ in 0..count {
                let source = source.map(|s| self.messy_case(s));
                let medium = medium.map(|m| self.messy_case(m));
                self.session(day, channel, None, source, medium, None, None, None);
            }
        }

        // Email: weekly newsletter on Tuesdays, nurture sequence for new contacts.
        let day_start = local_micros(self.tz, day, NaiveTime::MIN);
        let day_end = day_start + 86_400_000_000;
        if day.weekday() == Weekday::Tue {
            let campaign = format!(
                "newsletter-{}-W{:02}",
                day.iso_week().year(),
                day.iso_week().week()
            );
            let sent_at = local_micros(
                self.tz,
                day,
                NaiveTime::from_hms_opt(10, 0, 0).unwrap_or(NaiveTime::MIN),
            );
            let recipients: Vec<String> = self
                .subscribed
                .iter()
                .filter(|(_, subscribed)| *subscribed)
                .map(|(contact, _)| contact.clone())
                .collect();
            for contact in recipients {
                if self.rng.chance(0.7) {
                    self.send(&campaign, &contact, sent_at);
                }
            }
        }
        let due: Vec<(i64, String, u8)> = self
            .pending_nurture
            .iter()
            .filter(|(at, _, _)| *at < day_end)
            .cloned()
            .collect();
        self.pending_nurture.retain(|(at, _, _)| *at >= day_end);
        for (at, contact, step) in due {
            self.send(&format!("nurture-{step}"), &contact, at);
        }
        let clicks: Vec<(i64, String)> = self
            .email_clicks
            .iter()
            .filter(|(at, _)| *at < day_end)
            .cloned()
            .collect();
        self.email_clicks.retain(|(at, _)| *at >= day_end);
        for (at, contact) in clicks {
            let campaign = if self.rng.chance(0.5) {
                "newsletter"
            } else {
                "nurture"
            };
            let source = self.messy_case("newsletter");
            self.session(
                day,
                "email",
                None,
                Some(source),
                Some("email".into()),
                Some(campaign.into()),
                None,
                Some((at, contact)),
            );
        }

        // Contacts from outside the website: events, outbound, partners.
        let offline = self.rng.round(2.0 * self.scale * factor.min(1.2)) as usize;
        for _ in 0..offline {
            let source = self
                .rng
                .pick(&[("event", 3.0), ("outbound", 5.0), ("partner", 2.0)]);
            let time = self.time_of_day();
            let at = local_micros(self.tz, day, time);
            self.new_contact(at, source);
        }
    }

    /// Returns `text` in its usual lowercase, or (6% of the time) in another case.
    fn messy_case(&mut self, text: &str) -> String {
        if !self.rng.chance(0.06) {
            return text.to_string();
        }
        if self.rng.chance(0.5) {
            text.to_uppercase()
        } else {
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
        }
    }

    /// Returns the global index of the visitor of a new session: the contact's own visitor
    /// (while still in the pool), a recent visitor returning, or a new one.
    fn visitor(&mut self, known_contact: Option<&str>) -> usize {
        if let Some(contact) = known_contact {
            if let Some(index) = self.contact_visitor.get(contact) {
                if *index >= self.visitor_base {
                    return *index;
                }
            }
        }
        if !self.visitors.is_empty() && known_contact.is_none() && self.rng.chance(0.32) {
            let recent = self.visitors.len().min(4000);
            return self.visitor_base + self.visitors.len() - 1 - self.rng.below(recent);
        }
        let anonymous_id = self.id("A");
        self.visitors.push_back(Visitor {
            anonymous_id,
            contact_id: known_contact.map(str::to_string),
        });
        let index = self.visitor_base + self.visitors.len() - 1;
        if let Some(contact) = known_contact {
            self.contact_visitor.insert(contact.to_string(), index);
        }
        index
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &mut self,
        day: NaiveDate,
        channel: &'static str,
        platform: Option<&str>,
        utm_source: Option<String>,
        utm_medium: Option<String>,
        utm_campaign: Option<String>,
        utm_content: Option<String>,
        email_click: Option<(i64, String)>,
    ) {
        let started_at = match &email_click {
            Some((at, _)) => *at,
            None => {
                let time = self.time_of_day();
                local_micros(self.tz, day, time)
            }
        };
        if started_at >= self.horizon {
            return;
        }
        let visitor_index = self.visitor(email_click.as_ref().map(|(_, contact)| contact.as_str()));
        let visitor = self.visitors[visitor_index - self.visitor_base].clone();
        let session_id = self.id("S");
        let landing_page = self.rng.pick(&PAGES);
        let pageviews = 1 + self.rng.exponential(1.4) as i32;
        let mut contact_id = visitor.contact_id.clone();

        let mut at = started_at;
        let mut page = landing_page;
        for _ in 0..pageviews {
            let event_id = self.id("E");
            self.events.push(EventRow {
                event_id,
                session_id: session_id.clone(),
                anonymous_id: visitor.anonymous_id.clone(),
                contact_id: contact_id.clone(),
                occurred_at: at,
                name: "page_view",
                page,
            });
            if page == "/pricing" && self.rng.chance(0.9) {
                let event_id = self.id("E");
                self.events.push(EventRow {
                    event_id,
                    session_id: session_id.clone(),
                    anonymous_id: visitor.anonymous_id.clone(),
                    contact_id: contact_id.clone(),
                    occurred_at: at + 2_000_000,
                    name: "pricing_view",
                    page,
                });
            }
            at += (self.rng.exponential(45.0) * 1e6) as i64 + 1_000_000;
            page = self.rng.pick(&PAGES);
        }
        for (name, rate, page) in [
            ("content_download", 0.02, "/blog/attribution-guide"),
            ("webinar_signup", 0.008, "/webinars"),
        ] {
            let rate = if name == "webinar_signup"
                && utm_campaign
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("meta-webinar"))
            {
                0.06
            } else {
                rate
            };
            if self.rng.chance(rate) {
                let event_id = self.id("E");
                self.events.push(EventRow {
                    event_id,
                    session_id: session_id.clone(),
                    anonymous_id: visitor.anonymous_id.clone(),
                    contact_id: contact_id.clone(),
                    occurred_at: at,
                    name,
                    page,
                });
                at += 5_000_000;
            }
        }
        if self.rng.chance(form_rate(channel, platform)) {
            let demo = self.rng.chance(0.25);
            if contact_id.is_none() {
                let lead_source = channel.to_string();
                let contact = self.new_contact(at, &lead_source);
                self.visitors[visitor_index - self.visitor_base].contact_id = Some(contact.clone());
                self.contact_visitor.insert(contact.clone(), visitor_index);
                contact_id = Some(contact);
            }
            for name in if demo {
                vec!["form_submit", "demo_request"]
            } else {
                vec!["form_submit"]
            } {
                let event_id = self.id("E");
                self.events.push(EventRow {
                    event_id,
                    session_id: session_id.clone(),
                    anonymous_id: visitor.anonymous_id.clone(),
                    contact_id: contact_id.clone(),
                    occurred_at: at,
                    name,
                    page: if demo { "/demo" } else { "/contact" },
                });
            }
        }
        let row = SessionRow {
            session_id,
            anonymous_id: visitor.anonymous_id,
            contact_id,
            started_at,
            landing_page,
            utm_source,
            utm_medium,
            utm_campaign,
            utm_content,
            channel,
            device: self.rng.pick(&DEVICES),
            country: self.rng.pick(&COUNTRIES),
            pageviews,
        };
        if self.rng.chance(0.004) {
            self.sessions.push(row.clone());
        }
        self.sessions.push(row);
    }

    /// Creates a contact and plays out its whole funnel (stages, opportunity, emails).
    fn new_contact(&mut self, at: i64, lead_source: &str) -> String {
        let contact_id = self.id("C");
        let company_size = self.rng.pick(&COMPANY_SIZES);
        let region = match self.rng.pick(&COUNTRIES) {
            "US" | "CA" => "NA",
            "BR" => "LATAM",
            "IN" | "AU" => "APAC",
            _ => "EMEA",
        };
        self.contacts.push(ContactRow {
            contact_id: contact_id.clone(),
            created_at: at,
            lead_source: lead_source.to_string(),
            company_size,
            industry: self.rng.pick(&INDUSTRIES),
            region,
            owner: OWNERS[self.rng.below(OWNERS.len())],
        });
        self.stage(&contact_id, at, None, "lead");
        self.subscribed_index
            .insert(contact_id.clone(), self.subscribed.len());
        self.subscribed.push((contact_id.clone(), true));
        for (step, days) in [(1u8, 1.0), (2, 4.0), (3, 9.0)] {
            self.pending_nurture
                .push((at + (days * 86_400e6) as i64, contact_id.clone(), step));
        }

        let size_boost = match company_size {
            "1-10" => 0.6,
            "11-50" => 0.9,
            "51-200" => 1.1,
            "201-1000" => 1.25,
            _ => 1.35,
        };
        let day = 86_400e6;
        if !self
            .rng
            .chance((mql_rate(lead_source) * size_boost).min(0.95))
        {
            return contact_id;
        }
        let mql_at = at + (self.rng.exponential(3.0) * day) as i64 + 3_600_000_000;
        self.stage(&contact_id, mql_at, Some("lead"), "mql");
        if !self.rng.chance(0.45) {
            return contact_id;
        }
        let sql_at = mql_at + ((2.0 + self.rng.exponential(5.0)) * day) as i64;
        self.stage(&contact_id, sql_at, Some("mql"), "sql");
        if !self.rng.chance(0.68) {
            return contact_id;
        }
        let opportunity_at = sql_at + ((1.0 + self.rng.exponential(4.0)) * day) as i64;
        self.stage(&contact_id, opportunity_at, Some("sql"), "opportunity");
        if opportunity_at >= self.horizon {
            return contact_id;
        }
        let base = match company_size {
            "1-10" => 6_000.0,
            "11-50" => 14_000.0,
            "51-200" => 32_000.0,
            "201-1000" => 70_000.0,
            _ => 140_000.0,
        };
        let amount_cents = ((base * self.rng.noise(0.35) / 10.0).round() * 1000.0) as i128;
        let closed_at = opportunity_at + ((20.0 + self.rng.exponential(35.0)) * day) as i64;
        let won = self.rng.chance(0.27 * size_boost.min(1.2));
        let opportunity_id = self.id("O");
        let (status, closed) = if closed_at >= self.horizon {
            ("open", None)
        } else if won {
            self.stage(&contact_id, closed_at, Some("opportunity"), "customer");
            ("won", Some(closed_at))
        } else {
            ("lost", Some(closed_at))
        };
        self.opportunities.push(OpportunityRow {
            opportunity_id,
            contact_id: contact_id.clone(),
            created_at: opportunity_at,
            closed_at: closed,
            status,
            amount_cents,
        });
        contact_id
    }

    fn stage(&mut self, contact_id: &str, at: i64, from: Option<&'static str>, to: &'static str) {
        if at < self.horizon {
            self.stages.push(StageRow {
                contact_id: contact_id.to_string(),
                changed_at: at,
                from_stage: from,
                to_stage: to,
            });
        }
    }

    fn send(&mut self, campaign: &str, contact: &str, sent_at: i64) {
        if sent_at >= self.horizon {
            return;
        }
        let send_id = self.id("M");
        let delivered = self.rng.chance(0.97);
        let opened_at = (delivered && self.rng.chance(0.27))
            .then(|| sent_at + (self.rng.exponential(8.0) * 3.6e9) as i64);
        let clicked_at = opened_at
            .filter(|_| self.rng.chance(0.16))
            .map(|at| at + (self.rng.exponential(2.0) * 6e7) as i64);
        let unsubscribed = delivered && self.rng.chance(0.004);
        let opened_at = opened_at.filter(|at| *at < self.horizon);
        let clicked_at = clicked_at.filter(|at| *at < self.horizon);
        if let Some(at) = clicked_at {
            self.email_clicks.push((at, contact.to_string()));
        }
        if unsubscribed {
            if let Some(index) = self.subscribed_index.get(contact) {
                self.subscribed[*index].1 = false;
            }
        }
        self.sends.push(SendRow {
            send_id,
            email_campaign_id: campaign.to_string(),
            contact_id: contact.to_string(),
            sent_at,
            delivered,
            opened_at,
            clicked_at,
            unsubscribed,
        });
    }

    fn flush_month(&mut self, label: &str, writer: &mut Writer) -> Result<()> {
        let ads = std::mem::take(&mut self.ads);
        writer.write(
            "ads.campaign_daily",
            &format!("month={label}/part-0.parquet"),
            ads_batch(&ads)?,
        )?;
        if !self.late_ads.is_empty() && self.late_day.format("%Y-%m").to_string() == label {
            let late = std::mem::take(&mut self.late_ads);
            let name = format!("month={label}/late-{}.parquet", self.late_day);
            writer.write("ads.campaign_daily", &name, ads_batch(&late)?)?;
        }
        let sessions = std::mem::take(&mut self.sessions);
        writer.write(
            "analytics.sessions",
            &format!("sessions-{label}.parquet"),
            sessions_batch(&sessions)?,
        )?;
        let events = std::mem::take(&mut self.events);
        writer.write(
            "analytics.events",
            &format!("events-{label}.parquet"),
            events_batch(&events)?,
        )?;
        let sends = std::mem::take(&mut self.sends);
        writer.write(
            "email.sends",
            &format!("sends-{label}.parquet"),
            sends_batch(&sends)?,
        )?;
        // Keep the visitor pool bounded: old visitors rarely return after months.
        while self.visitors.len() > 200_000 {
            self.visitors.pop_front();
            self.visitor_base += 1;
        }
        let base = self.visitor_base;
        self.contact_visitor.retain(|_, index| *index >= base);
        Ok(())
    }

    fn finish(&mut self, writer: &mut Writer) -> Result<()> {
        writer.write(
            "crm.contacts",
            "contacts.parquet",
            contacts_batch(&self.contacts)?,
        )?;
        writer.write(
            "crm.lifecycle_changes",
            "lifecycle_changes.parquet",
            stages_batch(&self.stages)?,
        )?;
        writer.write(
            "crm.opportunities",
            "opportunities.parquet",
            opportunities_batch(&self.opportunities)?,
        )?;
        Ok(())
    }
}

/// Microseconds since the epoch of a local date and time in `tz` (the earlier instant when a
/// DST change makes it ambiguous, the next valid one when it falls in a gap).
fn local_micros(tz: Tz, day: NaiveDate, time: NaiveTime) -> i64 {
    let naive = NaiveDateTime::new(day, time);
    let local = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
    });
    match local {
        Some(instant) => instant.timestamp_micros(),
        None => naive.and_utc().timestamp_micros(),
    }
}

struct Writer {
    out: PathBuf,
    summary: BTreeMap<String, (usize, usize, u64)>,
}

impl Writer {
    /// Writes one Parquet file atomically: a hidden temporary name, then a rename.
    fn write(&mut self, table: &str, file: &str, batch: RecordBatch) -> Result<()> {
        let path = self.out.join(table.replace('.', "/")).join(file);
        let folder = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.out.clone());
        std::fs::create_dir_all(&folder)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let temporary = folder.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| -> Result<u64> {
            let handle = std::fs::File::create(&temporary)?;
            let properties = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by("kpi demo".to_string())
                .build();
            let mut writer = ArrowWriter::try_new(handle, batch.schema(), Some(properties))?;
            writer.write(&batch)?;
            let handle = writer.into_inner()?;
            handle.sync_all()?;
            let bytes = handle.metadata()?.len();
            drop(handle);
            std::fs::rename(&temporary, &path)?;
            Ok(bytes)
        })();
        let bytes = match result {
            Ok(bytes) => bytes,
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(Error::unavailable(
                    "demo_write",
                    format!("cannot write {}: {error}", path.display()),
                ));
            }
        };
        let entry = self.summary.entry(table.to_string()).or_default();
        entry.0 += batch.num_rows();
        entry.1 += 1;
        entry.2 += bytes;
        Ok(())
    }
}

fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn money() -> DataType {
    DataType::Decimal128(12, 2)
}

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn optional_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn timestamps(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        values
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

fn decimals(values: impl Iterator<Item = i128>) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from_iter_values(values).with_precision_and_scale(12, 2)?,
    ))
}

fn ads_batch(rows: &[AdRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("date", DataType::Date32, false),
            Field::new("platform", DataType::Utf8, false),
            Field::new("campaign_id", DataType::Utf8, false),
            Field::new("campaign_name", DataType::Utf8, false),
            Field::new("channel", DataType::Utf8, false),
            Field::new("impressions", DataType::Int64, false),
            Field::new("clicks", DataType::Int64, false),
            Field::new("spend", money(), false),
            Field::new("currency", DataType::Utf8, false),
            Field::new("platform_conversions", DataType::Int64, false),
        ],
        vec![
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.date))),
            strings(rows.iter().map(|r| r.platform)),
            strings(rows.iter().map(|r| r.campaign_id)),
            strings(rows.iter().map(|r| r.campaign_name)),
            strings(rows.iter().map(|r| r.channel)),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.impressions),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.clicks))),
            decimals(rows.iter().map(|r| r.spend_cents))?,
            strings(rows.iter().map(|_| "USD")),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.platform_conversions),
            )),
        ],
    )
}

fn sessions_batch(rows: &[SessionRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("session_id", DataType::Utf8, false),
            Field::new("anonymous_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, true),
            Field::new("started_at", utc_timestamp(), false),
            Field::new("landing_page", DataType::Utf8, false),
            Field::new("utm_source", DataType::Utf8, true),
            Field::new("utm_medium", DataType::Utf8, true),
            Field::new("utm_campaign", DataType::Utf8, true),
            Field::new("utm_content", DataType::Utf8, true),
            Field::new("channel", DataType::Utf8, false),
            Field::new("device", DataType::Utf8, false),
            Field::new("country", DataType::Utf8, false),
            Field::new("pageviews", DataType::Int32, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.session_id.as_str())),
            strings(rows.iter().map(|r| r.anonymous_id.as_str())),
            optional_strings(rows.iter().map(|r| r.contact_id.as_deref())),
            timestamps(rows.iter().map(|r| Some(r.started_at))),
            strings(rows.iter().map(|r| r.landing_page)),
            optional_strings(rows.iter().map(|r| r.utm_source.as_deref())),
            optional_strings(rows.iter().map(|r| r.utm_medium.as_deref())),
            optional_strings(rows.iter().map(|r| r.utm_campaign.as_deref())),
            optional_strings(rows.iter().map(|r| r.utm_content.as_deref())),
            strings(rows.iter().map(|r| r.channel)),
            strings(rows.iter().map(|r| r.device)),
            strings(rows.iter().map(|r| r.country)),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.pageviews),
            )),
        ],
    )
}

fn events_batch(rows: &[EventRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("session_id", DataType::Utf8, false),
            Field::new("anonymous_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, true),
            Field::new("occurred_at", utc_timestamp(), false),
            Field::new("name", DataType::Utf8, false),
            Field::new("page", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.event_id.as_str())),
            strings(rows.iter().map(|r| r.session_id.as_str())),
            strings(rows.iter().map(|r| r.anonymous_id.as_str())),
            optional_strings(rows.iter().map(|r| r.contact_id.as_deref())),
            timestamps(rows.iter().map(|r| Some(r.occurred_at))),
            strings(rows.iter().map(|r| r.name)),
            strings(rows.iter().map(|r| r.page)),
        ],
    )
}

fn contacts_batch(rows: &[ContactRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("created_at", utc_timestamp(), false),
            Field::new("lead_source", DataType::Utf8, false),
            Field::new("company_size", DataType::Utf8, false),
            Field::new("industry", DataType::Utf8, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("owner", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.created_at))),
            strings(rows.iter().map(|r| r.lead_source.as_str())),
            strings(rows.iter().map(|r| r.company_size)),
            strings(rows.iter().map(|r| r.industry)),
            strings(rows.iter().map(|r| r.region)),
            strings(rows.iter().map(|r| r.owner)),
        ],
    )
}

fn stages_batch(rows: &[StageRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("changed_at", utc_timestamp(), false),
            Field::new("from_stage", DataType::Utf8, true),
            Field::new("to_stage", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.changed_at))),
            optional_strings(rows.iter().map(|r| r.from_stage)),
            strings(rows.iter().map(|r| r.to_stage)),
        ],
    )
}

fn opportunities_batch(rows: &[OpportunityRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("opportunity_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("created_at", utc_timestamp(), false),
            Field::new("closed_at", utc_timestamp(), true),
            Field::new("status", DataType::Utf8, false),
            Field::new("amount", money(), false),
            Field::new("currency", DataType::Utf8, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.opportunity_id.as_str())),
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.created_at))),
            timestamps(rows.iter().map(|r| r.closed_at)),
            strings(rows.iter().map(|r| r.status)),
            decimals(rows.iter().map(|r| r.amount_cents))?,
            strings(rows.iter().map(|_| "USD")),
        ],
    )
}

fn sends_batch(rows: &[SendRow]) -> Result<RecordBatch> {
    batch(
        vec![
            Field::new("send_id", DataType::Utf8, false),
            Field::new("email_campaign_id", DataType::Utf8, false),
            Field::new("contact_id", DataType::Utf8, false),
            Field::new("sent_at", utc_timestamp(), false),
            Field::new("delivered", DataType::Boolean, false),
            Field::new("opened_at", utc_timestamp(), true),
            Field::new("clicked_at", utc_timestamp(), true),
            Field::new("unsubscribed", DataType::Boolean, false),
        ],
        vec![
            strings(rows.iter().map(|r| r.send_id.as_str())),
            strings(rows.iter().map(|r| r.email_campaign_id.as_str())),
            strings(rows.iter().map(|r| r.contact_id.as_str())),
            timestamps(rows.iter().map(|r| Some(r.sent_at))),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.delivered).collect::<Vec<_>>(),
            )),
            timestamps(rows.iter().map(|r| r.opened_at)),
            timestamps(rows.iter().map(|r| r.clicked_at)),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.unsubscribed).collect::<Vec<_>>(),
            )),
        ],
    )
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
    use super::*;

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
