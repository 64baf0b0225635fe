//! What a value may fairly be compared with. Two kinds of KPI mislead when compared the usual
//! way, and the metric layer (not each renderer) fixes that:
//!
//! - **To-date KPIs** (cumulative metrics with a week, month, quarter or year window) rise
//!   every period of their window, so "week over week" always looks like growth. They are
//!   compared with the same point of the previous window (`previous_window`: the same week of
//!   the previous quarter) in place of `previous` and `trailing_4`, and with a year ago.
//!   Running totals (no window) keep only the year-ago comparison.
//! - **Conversion cohorts** whose window has not closed by the data's latest day are still
//!   maturing: they always look worse than matured cohorts. Such a value carries `maturing`
//!   with the days observed and needed, and is compared with nothing (comparing at the same
//!   age would need a second, truncated computation; "not at all" is the honest default). A
//!   ratio or derived metric with a conversion part matures with it.

use chrono::{Datelike, NaiveDate};

use super::MetricService;
use crate::defs::{CumulativeWindow, Metric, MetricKind};
use crate::time::{Comparison, Grain, Period};

impl MetricService<'_> {
    /// The comparisons `metric` gets when `asked` are asked for: to-date metrics trade
    /// `previous` and `trailing_4` for `previous_window` (running totals drop them).
    pub(super) fn comparisons_for(&self, metric: &Metric, asked: &[Comparison]) -> Vec<Comparison> {
        let Some(window) = self.to_date_window(metric) else {
            return asked.to_vec();
        };
        let mut out = Vec::new();
        for comparison in asked {
            let effective = match comparison {
                Comparison::Previous | Comparison::Trailing4 | Comparison::PreviousWindow => {
                    if window == CumulativeWindow::Running {
                        continue;
                    }
                    Comparison::PreviousWindow
                }
                Comparison::YearAgo => Comparison::YearAgo,
            };
            if !out.contains(&effective) {
                out.push(effective);
            }
        }
        out
    }

    /// The periods a value of `period` is compared with under `comparison`.
    pub(super) fn compared_periods(
        &self,
        metric: &Metric,
        comparison: Comparison,
        period: Period,
    ) -> Vec<Period> {
        match (comparison, self.to_date_window(metric)) {
            (Comparison::PreviousWindow, Some(window)) if window != CumulativeWindow::Running => {
                let start = self.window_start(window, period.last_day());
                let previous_start = self.window_start(window, start - chrono::Duration::days(1));
                vec![self
                    .calendar
                    .same_point_of_previous(period, start, previous_start)]
            }
            _ => comparison.periods(&self.calendar, period),
        }
    }

    /// The comparison's base in words, where its name does not say it.
    pub(super) fn basis(&self, metric: &Metric, comparison: Comparison) -> Option<String> {
        let window = match (comparison, self.to_date_window(metric)?) {
            (Comparison::PreviousWindow, window) => window,
            _ => return None,
        };
        let window = match window {
            CumulativeWindow::Week => "week",
            CumulativeWindow::Month => "month",
            CumulativeWindow::Quarter => "quarter",
            CumulativeWindow::Year => "year",
            CumulativeWindow::Running => return None,
        };
        Some(format!("the same point of the previous {window}"))
    }

    /// The window of a to-date metric, `None` for every other kind.
    fn to_date_window(&self, metric: &Metric) -> Option<CumulativeWindow> {
        match &metric.kind {
            MetricKind::Cumulative { window, .. } => Some(*window),
            _ => None,
        }
    }

    /// The first day of the to-date window holding `last_day`.
    pub(super) fn window_start(&self, window: CumulativeWindow, last_day: NaiveDate) -> NaiveDate {
        let grain = match window {
            CumulativeWindow::Week => Grain::Week,
            CumulativeWindow::Month => Grain::Month,
            CumulativeWindow::Quarter => Grain::Quarter,
            CumulativeWindow::Year => {
                return NaiveDate::from_ymd_opt(last_day.year(), 1, 1).unwrap_or(last_day)
            }
            CumulativeWindow::Running => {
                return NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(last_day)
            }
        };
        self.calendar.period_of(last_day, grain).start
    }

    /// For a metric computed from conversion cohorts (itself or a part): the longest window
    /// in days and the data's latest day (the earliest over its conversion parts, each the
    /// latest local day of either step's table). `None` for other metrics, or when the latest
    /// day cannot be read (the value itself then fails to compute).
    pub(super) async fn cohort_window(&self, metric: &Metric) -> Option<(i64, NaiveDate)> {
        let mut pending = vec![metric];
        let mut seen = std::collections::BTreeSet::new();
        let mut found: Option<(i64, NaiveDate)> = None;
        while let Some(metric) = pending.pop() {
            if !seen.insert(metric.name.as_str()) {
                continue;
            }
            if let MetricKind::Conversion {
                from_table,
                to_table,
                within_days,
                step_times: [from_time, to_time],
                ..
            } = &metric.kind
            {
                let mut latest = None;
                for (table, column) in [(from_table, from_time), (to_table, to_time)] {
                    if let Ok(Some(day)) = self.engine.latest_day_as_listed(table, column).await {
                        latest = latest.max(Some(day));
                    }
                }
                let latest = latest?;
                let days = i64::from(*within_days);
                found = Some(match found {
                    Some((d, l)) => (d.max(days), l.min(latest)),
                    None => (days, latest),
                });
            }
            for part in super::parts(metric) {
                if let Some(part) = self.registry.metrics.get(&part) {
                    pending.push(part);
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::Maturity;
    use crate::time::{Calendar, Grain};
    use chrono::NaiveDate;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn calendar() -> Calendar {
        Calendar::new(chrono_tz::UTC, chrono::Weekday::Mon)
    }

    #[test]
    fn a_cohort_matures_when_the_data_reaches_its_last_entrants_window_end() {
        let calendar = calendar();
        let w45 = calendar.parse("2026-W45").expect("week"); // 2 to 8 November
        assert_eq!(
            Maturity::of(w45, 30, day("2026-11-15")),
            Some(Maturity {
                days_observed: 7,
                days_observed_first: 13,
                days_needed: 30
            }),
            "data to 15 November: the W45 cohort has had 7 to 13 of its 30 days"
        );
        assert_eq!(
            Maturity::of(w45, 30, day("2026-11-15")).map(|m| m.describe()),
            Some("7 to 13 of its 30 days observed".into())
        );
        // The last entrant (8 November) needs data to 8 December.
        assert!(Maturity::of(w45, 30, day("2026-12-07")).is_some());
        assert_eq!(Maturity::of(w45, 30, day("2026-12-08")), None);
        // Data ending inside the week: the last entrants have had nothing yet.
        let inside = Maturity::of(w45, 30, day("2026-11-05")).expect("maturing");
        assert_eq!((inside.days_observed, inside.days_observed_first), (0, 3));
    }

    #[test]
    fn to_date_kpis_compare_with_the_same_week_of_the_previous_quarter() {
        let calendar = calendar();
        let w48 = calendar.parse("2026-W48").expect("week"); // 23 to 29 November
        let quarter = calendar.period_of(w48.last_day(), Grain::Quarter);
        let previous =
            calendar.period_of(quarter.start - chrono::Duration::days(1), Grain::Quarter);
        let same = calendar.same_point_of_previous(w48, quarter.start, previous.start);
        // 29 November is day 60 of Q4 (from 1 October); day 60 of Q3 is 29 August (W35).
        assert_eq!(calendar.label(same), "2026-W35");
        // Across a year: the first days of Q1 against the first days of Q4.
        let w53 = calendar.parse("2026-W53").expect("week"); // 28 December to 3 January
        let quarter = calendar.period_of(w53.last_day(), Grain::Quarter);
        let previous =
            calendar.period_of(quarter.start - chrono::Duration::days(1), Grain::Quarter);
        let same = calendar.same_point_of_previous(w53, quarter.start, previous.start);
        assert_eq!(calendar.label(same), "2026-W40", "3 October");
        // The end of a 92-day quarter against a 91-day one: capped at its last day.
        let september = calendar.parse("2026-09").expect("month");
        let quarter = calendar.period_of(september.last_day(), Grain::Quarter);
        let previous =
            calendar.period_of(quarter.start - chrono::Duration::days(1), Grain::Quarter);
        let same = calendar.same_point_of_previous(september, quarter.start, previous.start);
        assert_eq!(calendar.label(same), "2026-06");
    }
}
