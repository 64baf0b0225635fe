//! The validated definition types: what the rest of kpi reads.
//!
//! Everything here was checked by [`super::resolve`]; a value of these types cannot hold an
//! unknown tier, unit, comparison or chart kind, and a derived metric carries its parsed
//! expression. This module owns no parsing of files and plans no SQL.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::attribution::Settings;
use crate::defs::expression::Expression;
use crate::engine::{ViewDef, REPORTING_SCHEMA};
pub use crate::time::Comparison;

/// A closed set of names a definition file may use for one key (`tier`, `unit`, ...).
pub trait Choice: Sized + Copy + 'static {
    /// Every value with its name, the first being the default.
    const ALL: &'static [(&'static str, Self)];

    /// Returns the value named `name`.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Returns the name files and output use.
    fn name(self) -> &'static str;

    /// Lists the names, for error hints.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|(n, _)| *n).collect()
    }
}

/// Declares a fieldless enum whose values are written by name in files and output.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Returns the name files and output use.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl Choice for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($text, Self::$variant)),+];

            fn name(self) -> &'static str {
                $name::name(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum!(
    /// Whether a KPI is a headline or a supporting number.
    Tier {
        /// Supporting KPI (the default).
        Supporting = "supporting",
        /// Headline KPI.
        Primary = "primary",
    }
);

named_enum!(
    /// What a metric's values measure; decides how they are written.
    Unit {
        /// A count (the default).
        Count = "count",
        /// Money, in the metric's currency.
        Currency = "currency",
        /// A share, written as a percentage.
        Percent = "percent",
        /// A plain ratio.
        Ratio = "ratio",
        /// A duration in seconds.
        Duration = "duration",
    }
);

named_enum!(
    /// Which direction of change is good news.
    Good {
        /// Higher is better (the default).
        Up = "up",
        /// Lower is better.
        Down = "down",
        /// Neither: changes are reported, never judged.
        Neutral = "neutral",
    }
);

named_enum!(
    /// Where a cumulative metric's window starts.
    CumulativeWindow {
        /// At the beginning of the data (the default).
        Running = "running",
        /// At the start of the week containing the period's last day.
        Week = "week",
        /// At the start of the month.
        Month = "month",
        /// At the start of the quarter.
        Quarter = "quarter",
        /// On January 1.
        Year = "year",
    }
);

named_enum!(
    /// How a metric is computed, as written in `kind = "..."`.
    KindName {
        /// An aggregate over one table (the default).
        Simple = "simple",
        /// One metric over another.
        Ratio = "ratio",
        /// Arithmetic over metrics.
        Derived = "derived",
        /// A running or to-date total.
        Cumulative = "cumulative",
        /// A step-to-step conversion rate.
        Conversion = "conversion",
    }
);

named_enum!(
    /// What a chart draws, as written in `kind = "..."`.
    ChartType {
        /// One metric over the trend weeks.
        Trend = "trend",
        /// One metric in the week by a dimension.
        Breakdown = "breakdown",
        /// Metrics in funnel order.
        Funnel = "funnel",
    }
);

/// How a metric is computed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricKind {
    /// An aggregate over the rows of one table or view.
    Simple {
        /// Aggregate expression.
        measure: String,
        /// Table or view read.
        table: String,
        /// Column placing a row in a period.
        time_column: String,
        /// Optional predicate.
        filter: Option<String>,
    },
    /// One metric divided by another, each summed over the period first.
    Ratio {
        /// Numerator metric name.
        numerator: String,
        /// Denominator metric name.
        denominator: String,
    },
    /// Arithmetic over other metrics, possibly from different sources.
    Derived {
        /// The expression as written, such as `spend / mqls` (part of the definition hash).
        expression: String,
        /// The expression parsed once at resolution; evaluation never parses again.
        #[serde(skip)]
        parsed: Expression,
    },
    /// A running total, or a to-date total reset each week, month, quarter or year.
    Cumulative {
        /// The additive metric accumulated.
        of: String,
        /// Where the window starts.
        window: CumulativeWindow,
    },
    /// The share of entities that reach a second step within a window after a first one,
    /// counted in the period they first reached the first step.
    Conversion {
        /// Entity column.
        entity: String,
        /// Table of the first step.
        from_table: String,
        /// Table of the second step.
        to_table: String,
        /// Window in days (inclusive).
        within_days: u32,
        /// The generated `reporting` view the metric averages.
        view: String,
        /// Time columns of the first and second step (where the data's latest day is read
        /// to tell a maturing cohort; not part of the hash, the view's SQL already is).
        #[serde(skip)]
        step_times: [String; 2],
    },
}

/// A validated metric.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Metric {
    /// Unique name.
    pub name: String,
    /// Human label.
    pub label: String,
    /// Meaning.
    pub description: String,
    /// Declared source of truth (the first of `sources` for composites that declare none).
    pub source: String,
    /// Every source the number depends on (one, except for derived metrics across sources).
    pub sources: Vec<String>,
    /// Owner.
    pub owner: String,
    /// Headline or supporting.
    pub tier: Tier,
    /// What its values measure.
    pub unit: Unit,
    /// Currency code for currency metrics.
    pub currency: Option<String>,
    /// Which direction is good.
    pub good: Good,
    /// How it is computed.
    pub kind: MetricKind,
    /// Allowed dimensions.
    pub dimensions: Vec<String>,
    /// Weekly targets by first week.
    pub targets: BTreeMap<String, f64>,
    /// Defining file, relative to the project.
    pub path: PathBuf,
    /// Line of its `name`.
    pub line: usize,
    /// Content hash of the resolved definition.
    pub hash: String,
}

/// A validated dashboard: one weekly report template.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Dashboard {
    /// Name (file stem), used in URLs.
    pub name: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Audience.
    pub audience: String,
    /// Headline KPIs.
    pub primary: Vec<String>,
    /// Supporting KPIs.
    pub supporting: Vec<String>,
    /// Attribution model and lookback of the report's attributed numbers (kpi.toml's
    /// defaults where the dashboard names none).
    #[serde(skip)]
    pub attribution: Settings,
    /// Comparisons on every tile.
    pub compare: Vec<Comparison>,
    /// Weeks in sparklines and trend charts.
    pub trend_weeks: u32,
    /// Supporting KPIs grouped under headings (one "Supporting KPIs" group when none is given).
    pub sections: Vec<Section>,
    /// Charts, in page order.
    pub charts: Vec<Chart>,
    /// The breakdown table.
    pub breakdown: Option<Breakdown>,
    /// The metric shown under every attribution model.
    pub attribution_comparison: Option<String>,
    /// Reconciliations in the data-health section.
    pub reconcile: Vec<Reconcile>,
    /// Thresholds of the summary.
    pub thresholds: Thresholds,
    /// Recipients of the scheduled email.
    pub email_to: Vec<String>,
    /// When `kpi serve` sends it: weekday and local time, for the latest complete week.
    pub schedule: Option<Schedule>,
    /// Alerts on its KPIs.
    pub alerts: Vec<Alert>,
    /// Content hash of the file (part of report ETags).
    pub hash: String,
}

/// An alert of a dashboard: one condition on one metric (optionally filtered), judged per week.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// Unique name across the project.
    pub name: String,
    /// Metric judged.
    pub metric: String,
    /// Dimension = value filters.
    pub filter: Vec<(String, String)>,
    /// The condition.
    pub condition: AlertCondition,
    /// Webhook URL.
    pub webhook: Option<String>,
    /// Email recipients.
    pub to: Vec<String>,
}

/// When an alert fires.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertCondition {
    /// The value is below a number.
    Below(f64),
    /// The value is above a number.
    Above(f64),
    /// The relative change against a comparison is below a share (`-0.2`).
    ChangeBelow {
        /// Threshold.
        ratio: f64,
        /// Comparison.
        against: Comparison,
        /// Smallest base judged.
        min_baseline: f64,
    },
    /// The relative change against a comparison is above a share.
    ChangeAbove {
        /// Threshold.
        ratio: f64,
        /// Comparison.
        against: Comparison,
        /// Smallest base judged.
        min_baseline: f64,
    },
    /// The value is behind this share of the week's target.
    BehindTarget(f64),
    /// No value for the week, or a source stale for it.
    NoData,
}

impl AlertCondition {
    /// The condition in words (`change against previous below -20.0%`).
    pub fn describe(&self) -> String {
        let percent = |r: f64| format!("{:+.1}%", r * 100.0);
        match self {
            Self::Below(v) => format!("value below {v}"),
            Self::Above(v) => format!("value above {v}"),
            Self::ChangeBelow { ratio, against, .. } => {
                format!(
                    "change against {} below {}",
                    against.name(),
                    percent(*ratio)
                )
            }
            Self::ChangeAbove { ratio, against, .. } => {
                format!(
                    "change against {} above {}",
                    against.name(),
                    percent(*ratio)
                )
            }
            Self::BehindTarget(share) => format!("behind {:.0}% of target", share * 100.0),
            Self::NoData => "no data for the week, or a stale source".to_string(),
        }
    }
}

/// A weekly send time in the reporting time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    /// Day of the week.
    pub weekday: chrono::Weekday,
    /// Local time.
    pub time: chrono::NaiveTime,
}

impl Schedule {
    /// Parses `monday 08:00`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let usage = "write the schedule as a weekday and a time, such as \"monday 08:00\"";
        let (day, time) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("`{text}`: {usage}"))?;
        let weekday = day
            .to_ascii_lowercase()
            .parse::<chrono::Weekday>()
            .map_err(|_| format!("`{day}` is not a weekday; {usage}"))?;
        let time = chrono::NaiveTime::parse_from_str(time.trim(), "%H:%M")
            .map_err(|_| format!("`{time}` is not a time; {usage}"))?;
        Ok(Self { weekday, time })
    }
}

/// A titled group of KPI tiles.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Metrics.
    pub metrics: Vec<String>,
}

/// One chart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Chart {
    /// URL-safe name.
    pub name: String,
    /// Heading.
    pub title: String,
    /// What it draws.
    pub kind: ChartKind,
}

/// What a chart draws.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChartKind {
    /// One metric over the trend weeks, with its target line.
    Trend {
        /// Metric.
        metric: String,
    },
    /// One metric in the week by a dimension.
    Breakdown {
        /// Metric.
        metric: String,
        /// Dimension.
        by: String,
    },
    /// Metrics in funnel order with the ratio of each step to the one before.
    Funnel {
        /// Steps.
        metrics: Vec<String>,
    },
}

/// Metrics side by side by one dimension.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Breakdown {
    /// Dimension.
    pub by: String,
    /// Metrics (columns).
    pub metrics: Vec<String>,
}

/// Two metrics that should agree by a dimension.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reconcile {
    /// In words.
    pub label: String,
    /// Reference metric.
    pub left: String,
    /// Compared metric.
    pub right: String,
    /// Dimension.
    pub by: String,
    /// Gap share above which it is a finding.
    pub tolerance: f64,
}

/// Thresholds of the generated summary.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Thresholds {
    /// Week-over-week change share worth a sentence.
    pub change: f64,
    /// Share of target below which a KPI is behind.
    pub behind_target: f64,
}

/// Returns whether a metric reads the attribution table, itself or through its parts.
pub fn reads_attribution(metrics: &BTreeMap<String, Metric>, metric: &Metric) -> bool {
    let table = format!(
        "{REPORTING_SCHEMA}.{}",
        crate::attribution::table::TABLE_NAME
    );
    match &metric.kind {
        MetricKind::Simple { table: read, .. } => read.eq_ignore_ascii_case(&table),
        MetricKind::Ratio {
            numerator,
            denominator,
        } => [numerator, denominator].iter().any(|p| {
            metrics
                .get(*p)
                .is_some_and(|m| reads_attribution(metrics, m))
        }),
        MetricKind::Derived { parsed, .. } => parsed.metrics().iter().any(|p| {
            metrics
                .get(p)
                .is_some_and(|m| reads_attribution(metrics, m))
        }),
        MetricKind::Cumulative { of, .. } => metrics
            .get(of)
            .is_some_and(|m| reads_attribution(metrics, m)),
        MetricKind::Conversion { .. } => false,
    }
}

/// The validated definition set.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Metrics by name.
    pub metrics: BTreeMap<String, Metric>,
    /// Views in dependency order.
    pub views: Vec<ViewDef>,
    /// Dashboards by name.
    pub dashboards: BTreeMap<String, Dashboard>,
    /// Hash of every definition file's content: changes with any edit.
    pub version: String,
}
