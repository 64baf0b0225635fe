//! Reporting periods: grains, labels, comparisons and their instants. Pure: no clock, no I/O.
//!
//! One [`Calendar`] (reporting time zone + week start) is applied everywhere. Weeks follow
//! ISO 8601 generalised to any start day: a week belongs to the year that contains its fourth
//! day, and week 1 is the first such week. With Monday starts this is exactly ISO 8601
//! (`2026-W01` starts on 2025-12-29). Periods are half-open local date ranges `[start, end)`;
//! their instants are local midnights in the reporting time zone, so a week across a DST change
//! lasts 167 or 169 hours.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// The size of a reporting period.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    /// A local calendar day.
    Day,
    /// A week from the configured start day.
    Week,
    /// A calendar month.
    Month,
    /// A calendar quarter.
    Quarter,
}

impl std::str::FromStr for Grain {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            "quarter" => Ok(Self::Quarter),
            other => Err(format!(
                "unknown grain `{other}`; use day, week, month or quarter"
            )),
        }
    }
}

impl fmt::Display for Grain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
        })
    }
}

/// A comparison asked for with each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Comparison {
    /// The period before.
    #[serde(rename = "previous")]
    Previous,
    /// The same period a year earlier.
    #[serde(rename = "year_ago")]
    YearAgo,
    /// The mean of the 4 periods before.
    #[serde(rename = "trailing_4")]
    Trailing4,
    /// The same point of the previous to-date window (the same week of the previous quarter):
    /// what a to-date KPI is compared with instead of the period before. Not asked for by name;
    /// the metric layer puts it in place of `previous` for to-date metrics.
    #[serde(rename = "previous_window")]
    PreviousWindow,
}

impl Comparison {
    /// Returns the name used in flags, URLs and output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Previous => "previous",
            Self::YearAgo => "year_ago",
            Self::Trailing4 => "trailing_4",
            Self::PreviousWindow => "previous_window",
        }
    }

    /// Parses one name (`previous`, `year_ago`, `trailing_4`).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Previous, Self::YearAgo, Self::Trailing4]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// Parses a comma-separated list such as `previous,year_ago`, without repeats.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let mut list = Vec::new();
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let comparison = Self::parse(part).ok_or_else(|| {
                format!("unknown comparison `{part}`; use previous, year_ago or trailing_4")
            })?;
            if !list.contains(&comparison) {
                list.push(comparison);
            }
        }
        Ok(list)
    }

    /// The periods a value of `period` is compared with (`previous_window` depends on the
    /// metric's window: see [`Calendar::same_point_of_previous`]; here it has none).
    pub fn periods(self, calendar: &Calendar, period: Period) -> Vec<Period> {
        match self {
            Self::Previous => vec![calendar.previous(period)],
            Self::YearAgo => vec![calendar.year_ago(period)],
            Self::Trailing4 => calendar.trailing(period, 4),
            Self::PreviousWindow => Vec::new(),
        }
    }
}

/// The reporting calendar of a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    /// Reporting time zone.
    pub tz: Tz,
    /// First day of a week.
    pub week_start: Weekday,
}

/// A half-open range of local dates `[start, end)` of one grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    /// First day.
    pub start: NaiveDate,
    /// First day after the period.
    pub end: NaiveDate,
    /// The grain.
    pub grain: GrainKey,
}

/// [`Grain`] with an order, so periods sort.
pub type GrainKey = u8;

fn grain_key(grain: Grain) -> GrainKey {
    match grain {
        Grain::Day => 0,
        Grain::Week => 1,
        Grain::Month => 2,
        Grain::Quarter => 3,
    }
}

fn grain_of(key: GrainKey) -> Grain {
    match key {
        0 => Grain::Day,
        1 => Grain::Week,
        2 => Grain::Month,
        _ => Grain::Quarter,
    }
}

impl Period {
    /// Returns the period's grain.
    pub fn grain(&self) -> Grain {
        grain_of(self.grain)
    }

    /// Returns the last day of the period (inclusive).
    pub fn last_day(&self) -> NaiveDate {
        self.end - Duration::days(1)
    }
}

impl Calendar {
    /// Builds a calendar.
    pub fn new(tz: Tz, week_start: Weekday) -> Self {
        Self { tz, week_start }
    }

    /// Returns the period of `grain` that contains local date `day`.
    pub fn period_of(&self, day: NaiveDate, grain: Grain) -> Period {
        let (start, end) = match grain {
            Grain::Day => (day, day + Duration::days(1)),
            Grain::Week => {
                let offset = (7 + day.weekday().num_days_from_monday() as i64
                    - self.week_start.num_days_from_monday() as i64)
                    % 7;
                let start = day - Duration::days(offset);
                (start, start + Duration::days(7))
            }
            Grain::Month => {
                let start = first_of_month(day.year(), day.month());
                (start, add_months(start, 1))
            }
            Grain::Quarter => {
                let month = (day.month0() / 3) * 3 + 1;
                let start = first_of_month(day.year(), month);
                (start, add_months(start, 3))
            }
        };
        Period {
            start,
            end,
            grain: grain_key(grain),
        }
    }

    /// Returns the period of `grain` that contains an instant (cut in the reporting time zone).
    pub fn period_of_instant(&self, instant: DateTime<Utc>, grain: Grain) -> Period {
        self.period_of(instant.with_timezone(&self.tz).date_naive(), grain)
    }

    /// Returns the period after `period`.
    pub fn next(&self, period: Period) -> Period {
        self.period_of(period.end, period.grain())
    }

    /// Returns the period before `period`.
    pub fn previous(&self, period: Period) -> Period {
        self.period_of(period.start - Duration::days(1), period.grain())
    }

    /// Returns the same period a year earlier: the same week number of the previous week-year
    /// (week 53 maps to week 52 when the earlier year has none), the same date (29 February
    /// maps to 28 February), or the same month or quarter.
    pub fn year_ago(&self, period: Period) -> Period {
        match period.grain() {
            Grain::Week => {
                let (year, week) = self.week_number(period.start);
                let week = week.min(self.weeks_in_year(year - 1));
                self.week(year - 1, week)
                    .unwrap_or_else(|| self.previous(period))
            }
            Grain::Day => {
                let day = period.start;
                let earlier = NaiveDate::from_ymd_opt(day.year() - 1, day.month(), day.day())
                    .or_else(|| NaiveDate::from_ymd_opt(day.year() - 1, day.month(), day.day() - 1))
                    .unwrap_or(day);
                self.period_of(earlier, Grain::Day)
            }
            grain => self.period_of(add_months(period.start, -12), grain),
        }
    }

    /// Returns the period (of `period`'s grain) as far into the window before `window_start`
    /// as `period`'s last day is into the window starting at `window_start`, where
    /// `previous_start` is that earlier window's first day: the same week of the previous
    /// quarter (day offsets, capped at the earlier window's last day).
    pub fn same_point_of_previous(
        &self,
        period: Period,
        window_start: NaiveDate,
        previous_start: NaiveDate,
    ) -> Period {
        let offset = period.last_day() - window_start;
        let day = (previous_start + offset).min(window_start - Duration::days(1));
        self.period_of(day, period.grain())
    }

    /// Returns the `count` periods before `period`, oldest first.
    pub fn trailing(&self, period: Period, count: usize) -> Vec<Period> {
        let mut periods = Vec::with_capacity(count);
        let mut current = period;
        for _ in 0..count {
            current = self.previous(current);
            periods.push(current);
        }
        periods.reverse();
        periods
    }

    /// Returns every period from `from` to `to`, both included.
    pub fn range(&self, from: Period, to: Period) -> Vec<Period> {
        let mut periods = Vec::new();
        let mut current = from;
        while current.start <= to.start {
            periods.push(current);
            current = self.next(current);
        }
        periods
    }

    /// Returns the week-year and week number of the week containing `day`.
    pub fn week_number(&self, day: NaiveDate) -> (i32, u32) {
        let week = self.period_of(day, Grain::Week);
        let anchor = week.start + Duration::days(3);
        (anchor.year(), anchor.ordinal0() / 7 + 1)
    }

    /// Returns how many weeks week-year `year` has (52 or 53).
    pub fn weeks_in_year(&self, year: i32) -> u32 {
        let (Some(first), Some(next)) = (self.week_one_start(year), self.week_one_start(year + 1))
        else {
            return 52;
        };
        ((next - first).num_days() / 7) as u32
    }

    fn week_one_start(&self, year: i32) -> Option<NaiveDate> {
        let fourth = NaiveDate::from_ymd_opt(year, 1, 4)?;
        Some(self.period_of(fourth, Grain::Week).start)
    }

    /// Returns week `number` of week-year `year`, if it exists.
    pub fn week(&self, year: i32, number: u32) -> Option<Period> {
        if number == 0 || number > self.weeks_in_year(year) {
            return None;
        }
        let start = self.week_one_start(year)? + Duration::days(7 * (number as i64 - 1));
        Some(self.period_of(start, Grain::Week))
    }

    /// Returns the label of a period: `2026-W47`, `2026-11-16`, `2026-11`, `2026-Q4`.
    pub fn label(&self, period: Period) -> String {
        match period.grain() {
            Grain::Day => period.start.format("%Y-%m-%d").to_string(),
            Grain::Week => {
                let (year, week) = self.week_number(period.start);
                format!("{year:04}-W{week:02}")
            }
            Grain::Month => period.start.format("%Y-%m").to_string(),
            Grain::Quarter => format!("{}-Q{}", period.start.year(), period.start.month0() / 3 + 1),
        }
    }

    /// Parses a label of any grain; the grain is the label's own.
    pub fn parse(&self, label: &str) -> Result<Period, String> {
        let hint = "use 2026-W47 (week), 2026-11-16 (day), 2026-11 (month) or 2026-Q4 (quarter)";
        let text = label.trim();
        if let Some((year, week)) = text.split_once("-W") {
            let year: i32 = year
                .parse()
                .map_err(|_| format!("`{label}` is not a period; {hint}"))?;
            let week: u32 = week
                .parse()
                .map_err(|_| format!("`{label}` is not a period; {hint}"))?;
            return self.week(year, week).ok_or_else(|| {
                format!(
                    "{year} has {} weeks, so `{label}` does not exist",
                    self.weeks_in_year(year)
                )
            });
        }
        if let Some((year, quarter)) = text.split_once("-Q") {
            let year: i32 = year
                .parse()
                .map_err(|_| format!("`{label}` is not a period; {hint}"))?;
            let quarter: u32 = quarter
                .parse()
                .map_err(|_| format!("`{label}` is not a period; {hint}"))?;
            if !(1..=4).contains(&quarter) {
                return Err(format!("`{label}`: quarters are Q1 to Q4"));
            }
            return Ok(self.period_of(first_of_month(year, (quarter - 1) * 3 + 1), Grain::Quarter));
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(self.period_of(day, Grain::Day));
        }
        if let Ok(day) = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
            return Ok(self.period_of(day, Grain::Month));
        }
        Err(format!("`{label}` is not a period; {hint}"))
    }

    /// Parses a label and converts it to `grain` (the period of `grain` containing its start
    /// for `from`, or containing its last day for `to`).
    pub fn parse_as(&self, label: &str, grain: Grain, is_end: bool) -> Result<Period, String> {
        let period = self.parse(label)?;
        let day = if is_end {
            period.last_day()
        } else {
            period.start
        };
        Ok(self.period_of(day, grain))
    }

    /// Returns the instant local `day` starts in the reporting time zone (the first valid
    /// instant when midnight falls in a DST gap).
    pub fn start_instant(&self, day: NaiveDate) -> DateTime<Utc> {
        let mut time = day.and_time(NaiveTime::MIN);
        for _ in 0..24 * 4 {
            if let Some(instant) = self.tz.from_local_datetime(&time).earliest() {
                return instant.with_timezone(&Utc);
            }
            time += Duration::minutes(15);
        }
        day.and_time(NaiveTime::MIN).and_utc()
    }

    /// Returns the period's instants `[start, end)`.
    pub fn instants(&self, period: Period) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            self.start_instant(period.start),
            self.start_instant(period.end),
        )
    }
}

fn first_of_month(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MIN)
}

fn add_months(day: NaiveDate, months: i32) -> NaiveDate {
    let total = day.year() * 12 + day.month0() as i32 + months;
    first_of_month(total.div_euclid(12), total.rem_euclid(12) as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso() -> Calendar {
        Calendar::new(chrono_tz::America::New_York, Weekday::Mon)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn iso_weeks_match_chrono_for_twenty_years() {
        let calendar = iso();
        let mut day = date(2015, 1, 1);
        while day < date(2035, 1, 1) {
            let iso = day.iso_week();
            assert_eq!(calendar.week_number(day), (iso.year(), iso.week()), "{day}");
            day += Duration::days(1);
        }
    }

    #[test]
    fn iso_year_boundaries() {
        let calendar = iso();
        let w01 = calendar.parse("2026-W01").expect("week");
        assert_eq!(w01.start, date(2025, 12, 29));
        assert_eq!(calendar.weeks_in_year(2026), 53);
        assert_eq!(calendar.weeks_in_year(2025), 52);
        assert_eq!(calendar.weeks_in_year(2020), 53);
        assert_eq!(
            calendar.parse("2026-W53").expect("w53").start,
            date(2026, 12, 28)
        );
        assert!(calendar
            .parse("2025-W53")
            .expect_err("no w53")
            .contains("2025 has 52 weeks"));
        assert_eq!(
            calendar.label(calendar.period_of(date(2027, 1, 1), Grain::Week)),
            "2026-W53"
        );
    }

    #[test]
    fn labels_round_trip_for_every_grain() {
        for start in [Weekday::Mon, Weekday::Sun, Weekday::Sat] {
            let calendar = Calendar::new(chrono_tz::UTC, start);
            for grain in [Grain::Day, Grain::Week, Grain::Month, Grain::Quarter] {
                let mut period = calendar.period_of(date(2019, 12, 20), grain);
                for _ in 0..400 {
                    let label = calendar.label(period);
                    assert_eq!(
                        calendar.parse(&label).expect("parses"),
                        period,
                        "{label} ({start})"
                    );
                    period = calendar.next(period);
                }
            }
        }
    }

    #[test]
    fn every_instant_falls_in_exactly_one_week() {
        let calendar = iso();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let seconds = 1_700_000_000 + (state % 200_000_000) as i64;
            let instant = DateTime::from_timestamp(seconds, 0).expect("instant");
            let week = calendar.period_of_instant(instant, Grain::Week);
            let (start, end) = calendar.instants(week);
            assert!(
                start <= instant && instant < end,
                "{instant} not in {week:?}"
            );
            assert!(
                calendar.instants(calendar.next(week)).0 == end,
                "weeks tile time"
            );
        }
    }

    #[test]
    fn dst_weeks_have_167_or_169_hours() {
        let calendar = iso();
        let hours = |label: &str| {
            let (start, end) = calendar.instants(calendar.parse(label).expect("week"));
            (end - start).num_hours()
        };
        assert_eq!(hours("2026-W10"), 167, "spring forward on 2026-03-08");
        assert_eq!(hours("2026-W44"), 169, "fall back on 2026-11-01");
        assert_eq!(hours("2026-W47"), 168);
        let (start, _) = calendar.instants(calendar.parse("2026-W47").expect("week"));
        assert_eq!(start.to_rfc3339(), "2026-11-16T05:00:00+00:00");
    }

    #[test]
    fn comparisons() {
        let calendar = iso();
        let w47 = calendar.parse("2026-W47").expect("week");
        assert_eq!(calendar.label(calendar.previous(w47)), "2026-W46");
        assert_eq!(calendar.label(calendar.year_ago(w47)), "2025-W47");
        assert_eq!(
            calendar.label(calendar.year_ago(calendar.parse("2026-W53").expect("w"))),
            "2025-W52"
        );
        assert_eq!(
            calendar.label(calendar.previous(calendar.parse("2026-W01").expect("w"))),
            "2025-W52"
        );
        let trailing: Vec<String> = calendar
            .trailing(w47, 4)
            .into_iter()
            .map(|p| calendar.label(p))
            .collect();
        assert_eq!(
            trailing,
            vec!["2026-W43", "2026-W44", "2026-W45", "2026-W46"]
        );
        let leap = calendar.parse("2024-02-29").expect("day");
        assert_eq!(calendar.label(calendar.year_ago(leap)), "2023-02-28");
        let q1 = calendar.parse("2026-Q1").expect("quarter");
        assert_eq!(calendar.label(calendar.previous(q1)), "2025-Q4");
        assert_eq!(
            calendar.label(calendar.year_ago(calendar.parse("2026-03").expect("m"))),
            "2025-03"
        );
    }

    #[test]
    fn sunday_weeks() {
        let calendar = Calendar::new(chrono_tz::UTC, Weekday::Sun);
        let week = calendar.period_of(date(2026, 11, 18), Grain::Week);
        assert_eq!(week.start, date(2026, 11, 15));
        assert_eq!(week.start.weekday(), Weekday::Sun);
    }

    #[test]
    fn ranges_and_conversions() {
        let calendar = iso();
        let from = calendar
            .parse_as("2026-W40", Grain::Week, false)
            .expect("from");
        let to = calendar
            .parse_as("2026-W47", Grain::Week, true)
            .expect("to");
        assert_eq!(calendar.range(from, to).len(), 8);
        let month = calendar
            .parse_as("2026-W47", Grain::Month, false)
            .expect("month");
        assert_eq!(calendar.label(month), "2026-11");
        assert!(calendar.parse("2026-13").is_err());
        assert!(calendar
            .parse("last week")
            .expect_err("bad")
            .contains("use 2026-W47"));
    }
}
