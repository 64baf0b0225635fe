//! The attribution view's credit rules: pure functions from touches and conversions to credits.
//!
//! Rules (SPEC section 6, documented on `/attribution` later):
//! - a touch counts for a conversion of the same entity when
//!   `conversion_ts - lookback <= touch_ts <= conversion_ts` (exact durations, both ends in);
//! - a path is ordered by `(touch_ts, touch_id)`; a touch id seen twice counts once; an earlier
//!   conversion does not reset the path of a later one (touches are reused);
//! - a conversion with no touch in its window gives all its credit to `(unattributed)`;
//! - fractions of one conversion sum to 1; revenue is split in cents by largest remainder, a tie
//!   going to the later touch in path order, so revenue credits add up to the revenue exactly.
//!
//! Models: first touch, last touch, last non-direct (the last touch whose channel is not
//! `direct`; the last touch when the whole path is direct), linear (1/n), position-based
//! (40/20/40; one touch gets 1, two get 1/2 each, the middle 20 % split evenly), time decay
//! (weight `2^(-age/half_life)`, continuous age, normalised), and a first-order Markov model:
//! channel removal effects computed exactly from converting and non-converting paths, then each
//! conversion's credit spread over its touches in proportion to their channels' weights.
//!
//! Nothing here reads files or knows SQL; adapters feed it entity by entity, so memory is
//! bounded by the largest entity's history.

pub mod example;
pub mod io;
pub mod markov;
pub mod memory;
mod output;
pub mod stream;
pub mod table;

use chrono::{DateTime, Duration, Utc};

/// Channel name of credit that no touch earned.
pub const UNATTRIBUTED: &str = "(unattributed)";

/// One marketing touch of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    /// Unique id; a repeated id is the same touch landed twice.
    pub id: String,
    /// The entity (contact, user) touched.
    pub entity: String,
    /// When it happened.
    pub ts: DateTime<Utc>,
    /// Channel.
    pub channel: String,
    /// Campaign, if any.
    pub campaign: Option<String>,
}

/// One conversion of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// Unique id.
    pub id: String,
    /// The entity that converted.
    pub entity: String,
    /// When.
    pub ts: DateTime<Utc>,
    /// Revenue in cents; `None` for count-only conversions.
    pub revenue_cents: Option<i64>,
    /// Conversion type (`mql`, `opportunity_created`), when the input has one. Markov
    /// weights are computed per type by the SQL table; the other models ignore it.
    pub kind: Option<String>,
}

/// An attribution model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// All credit to the first touch.
    FirstTouch,
    /// All credit to the last touch.
    LastTouch,
    /// All credit to the last touch that is not direct (or the last, if all are direct).
    LastNonDirect,
    /// Equal credit.
    Linear,
    /// 40 % first, 40 % last, 20 % spread over the middle.
    PositionBased,
    /// Weights `2^(-age / half_life)`, normalised.
    TimeDecay {
        /// Half-life.
        half_life: Duration,
    },
    /// First-order Markov removal effects (channel weights from [`markov::channel_weights`]).
    Markov,
}

impl Model {
    /// Returns the model's name as used in flags and column names.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FirstTouch => "first_touch",
            Self::LastTouch => "last_touch",
            Self::LastNonDirect => "last_non_direct",
            Self::Linear => "linear",
            Self::PositionBased => "position_based",
            Self::TimeDecay { .. } => "time_decay",
            Self::Markov => "markov",
        }
    }

    /// Parses a model name; `half_life` applies to `time_decay`.
    pub fn parse(name: &str, half_life: Duration) -> Result<Self, String> {
        Ok(match name {
            "first_touch" => Self::FirstTouch,
            "last_touch" => Self::LastTouch,
            "last_non_direct" => Self::LastNonDirect,
            "linear" => Self::Linear,
            "position_based" => Self::PositionBased,
            "time_decay" => Self::TimeDecay { half_life },
            "markov" => Self::Markov,
            other => {
                return Err(format!(
                    "unknown model `{other}`; use first_touch, last_touch, last_non_direct, linear, position_based, time_decay, markov or all"
                ))
            }
        })
    }

    /// Every model, in documentation order.
    pub fn all(half_life: Duration) -> Vec<Self> {
        vec![
            Self::FirstTouch,
            Self::LastTouch,
            Self::LastNonDirect,
            Self::Linear,
            Self::PositionBased,
            Self::TimeDecay { half_life },
            Self::Markov,
        ]
    }
}

/// A model with its lookback: everything an attributed number depends on besides the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The model.
    pub model: Model,
    /// The lookback window.
    pub lookback: Duration,
}

impl Settings {
    /// Parses a model name and lookback, with the (validated) half-life `time_decay` uses.
    pub fn parse(model: &str, lookback: &str, half_life: Duration) -> Result<Self, String> {
        let lookback = parse_duration(lookback)?;
        if lookback < Duration::zero() {
            return Err("the lookback cannot be negative".into());
        }
        Ok(Self {
            model: Model::parse(model, half_life)?,
            lookback,
        })
    }

    /// Says what produced a number: `linear, 30d lookback` or
    /// `time_decay (half-life 7d), 30d lookback`.
    pub fn label(&self) -> String {
        match self.model {
            Model::TimeDecay { half_life } => format!(
                "time_decay (half-life {}), {} lookback",
                format_duration(half_life),
                format_duration(self.lookback)
            ),
            model => format!(
                "{}, {} lookback",
                model.name(),
                format_duration(self.lookback)
            ),
        }
    }

    /// The same settings under another model (`time_decay` keeps this half-life if it has one).
    pub fn with_model(&self, model: Model) -> Self {
        Self {
            model,
            lookback: self.lookback,
        }
    }
}

/// Writes a duration the way [`parse_duration`] reads it: `30d`, `12h`, `90m`, `45s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One credit row: a (conversion, touch) pair, or the conversion's unattributed remainder.
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    /// Conversion id.
    pub conversion_id: String,
    /// Touch id; `None` for `(unattributed)`.
    pub touch_id: Option<String>,
    /// 0-based position in the path; `None` for `(unattributed)`.
    pub position: Option<usize>,
    /// Channel (or `(unattributed)`).
    pub channel: String,
    /// Campaign of the touch.
    pub campaign: Option<String>,
    /// Fraction of the conversion.
    pub credit: f64,
    /// Revenue credit in cents (`None` for count-only conversions).
    pub revenue_cents: Option<i64>,
}

/// Returns the path of `conversion`: the entity's touches inside its window, de-duplicated by
/// id and ordered by `(ts, id)`. `touches` must all belong to the conversion's entity.
pub fn path<'t>(
    touches: &'t [Touch],
    conversion: &Conversion,
    lookback: Duration,
) -> Vec<&'t Touch> {
    let earliest = conversion.ts - lookback;
    let mut inside: Vec<&Touch> = touches
        .iter()
        .filter(|t| t.ts >= earliest && t.ts <= conversion.ts)
        .collect();
    inside.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
    inside.dedup_by(|later, earlier| later.id == earlier.id);
    inside
}

/// What the credit rules read of a touch on a path.
pub trait OnPath {
    /// When it happened.
    fn ts(&self) -> DateTime<Utc>;
    /// Its channel.
    fn channel(&self) -> &str;
}

impl OnPath for &Touch {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn channel(&self) -> &str {
        &self.channel
    }
}

/// Returns the credit fractions of a path under a model; `channel_weight` gives a touch's
/// Markov channel weight.
pub fn fractions(
    path: &[&Touch],
    conversion_ts: DateTime<Utc>,
    model: Model,
    channel_weight: &dyn Fn(&str) -> f64,
) -> Vec<f64> {
    fractions_of(path, conversion_ts, model, &|touch: &&Touch| {
        channel_weight(&touch.channel)
    })
}

/// [`fractions`] over any representation of a path's touches.
pub fn fractions_of<T: OnPath>(
    path: &[T],
    conversion_ts: DateTime<Utc>,
    model: Model,
    channel_weight: &dyn Fn(&T) -> f64,
) -> Vec<f64> {
    let mut weights = Vec::new();
    fractions_into(path, conversion_ts, model, channel_weight, &mut weights);
    weights
}

/// [`fractions_of`] into `weights` (cleared first), a buffer kept between calls.
pub fn fractions_into<T: OnPath>(
    path: &[T],
    conversion_ts: DateTime<Utc>,
    model: Model,
    channel_weight: &dyn Fn(&T) -> f64,
    weights: &mut Vec<f64>,
) {
    let n = path.len();
    weights.clear();
    if n == 0 {
        return;
    }
    weights.resize(n, 0.0);
    match model {
        Model::FirstTouch => weights[0] = 1.0,
        Model::LastTouch => weights[n - 1] = 1.0,
        Model::LastNonDirect => {
            let index = path
                .iter()
                .rposition(|t| !is_direct(t.channel()))
                .unwrap_or(n - 1);
            weights[index] = 1.0;
        }
        Model::Linear => weights.iter_mut().for_each(|w| *w = 1.0 / n as f64),
        Model::PositionBased => match n {
            1 => weights[0] = 1.0,
            2 => weights.iter_mut().for_each(|w| *w = 0.5),
            _ => {
                weights[0] = 0.4;
                weights[n - 1] = 0.4;
                let middle = 0.2 / (n - 2) as f64;
                weights[1..n - 1].iter_mut().for_each(|w| *w = middle);
            }
        },
        Model::TimeDecay { half_life } => {
            let half = half_life.num_milliseconds() as f64;
            for (weight, touch) in weights.iter_mut().zip(path) {
                let age = (conversion_ts - touch.ts()).num_milliseconds() as f64;
                *weight = (-age / half).exp2();
            }
            normalise(weights);
        }
        Model::Markov => {
            for (weight, touch) in weights.iter_mut().zip(path) {
                *weight = channel_weight(touch);
            }
            if weights.iter().sum::<f64>() <= 0.0 {
                weights.iter_mut().for_each(|w| *w = 1.0);
            }
            normalise(weights);
        }
    }
}

fn normalise(weights: &mut [f64]) {
    let total: f64 = weights.iter().sum();
    if total > 0.0 {
        weights.iter_mut().for_each(|w| *w /= total);
    }
}

/// Returns whether a channel is direct traffic.
pub fn is_direct(channel: &str) -> bool {
    channel.eq_ignore_ascii_case("direct") || channel.eq_ignore_ascii_case("(direct)")
}

/// Splits `cents` by `fractions`: floors, then the remaining cents to the largest remainders,
/// a tie going to the later position. The parts add up to `cents` exactly.
pub fn allocate_cents(cents: i64, fractions: &[f64]) -> Vec<i64> {
    let mut parts = Vec::new();
    allocate_cents_into(cents, fractions, &mut parts, &mut Scratch::default());
    parts
}

/// Buffers [`allocate_cents_into`] reuses from one conversion to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    raw: Vec<f64>,
    order: Vec<usize>,
}

/// [`allocate_cents`] into `parts`, with buffers kept between calls.
pub fn allocate_cents_into(
    cents: i64,
    fractions: &[f64],
    parts: &mut Vec<i64>,
    scratch: &mut Scratch,
) {
    parts.clear();
    if fractions.is_empty() {
        return;
    }
    let raw = &mut scratch.raw;
    raw.clear();
    raw.extend(fractions.iter().map(|f| f * cents as f64));
    parts.extend(raw.iter().map(|r| floor(r + 1e-9)));
    let mut left = cents - parts.iter().sum::<i64>();
    if left == 0 {
        return;
    }
    // The remainders, computed once (in place of the raw shares, no longer needed).
    for (share, part) in raw.iter_mut().zip(parts.iter()) {
        *share -= *part as f64;
    }
    let remainder = &*raw;
    let order = &mut scratch.order;
    order.clear();
    order.extend(0..fractions.len());
    // Largest remainder first; on a tie (within float noise) the later position first.
    order.sort_by(|&a, &b| {
        let (ra, rb) = (remainder[a], remainder[b]);
        if (ra - rb).abs() < 1e-7 {
            b.cmp(&a)
        } else {
            rb.total_cmp(&ra)
        }
    });
    let step = if left >= 0 { 1 } else { -1 };
    let mut index = 0;
    while left != 0 && !order.is_empty() {
        let position = if step > 0 {
            order[index % order.len()]
        } else {
            order[order.len() - 1 - index % order.len()]
        };
        parts[position] += step;
        left -= step;
        index += 1;
    }
}

/// `value.floor() as i64` for the cents of a revenue share, without the libm call `floor` is
/// on baseline x86-64 (seven models split every conversion's revenue).
fn floor(value: f64) -> i64 {
    let truncated = value as i64;
    if (truncated as f64) > value {
        truncated - 1
    } else {
        truncated
    }
}

/// Credits the conversions of one entity. `touches` and `conversions` must all belong to it.
pub fn credit_entity(
    touches: &[Touch],
    conversions: &[Conversion],
    model: Model,
    lookback: Duration,
    channel_weight: &dyn Fn(&str) -> f64,
) -> Vec<Credit> {
    let mut credits = Vec::new();
    for conversion in conversions {
        let path = path(touches, conversion, lookback);
        if path.is_empty() {
            credits.push(Credit {
                conversion_id: conversion.id.clone(),
                touch_id: None,
                position: None,
                channel: UNATTRIBUTED.to_string(),
                campaign: None,
                credit: 1.0,
                revenue_cents: conversion.revenue_cents,
            });
            continue;
        }
        let fractions = fractions(&path, conversion.ts, model, channel_weight);
        let revenue = conversion
            .revenue_cents
            .map(|cents| allocate_cents(cents, &fractions));
        for (position, (touch, fraction)) in path.iter().zip(&fractions).enumerate() {
            credits.push(Credit {
                conversion_id: conversion.id.clone(),
                touch_id: Some(touch.id.clone()),
                position: Some(position),
                channel: touch.channel.clone(),
                campaign: touch.campaign.clone(),
                credit: *fraction,
                revenue_cents: revenue.as_ref().map(|parts| parts[position]),
            });
        }
    }
    credits
}

/// Credits every conversion of in-memory inputs (grouping by entity first). For Markov, channel
/// weights are computed from the same inputs' converting and non-converting paths.
pub fn attribute(
    touches: &[Touch],
    conversions: &[Conversion],
    model: Model,
    lookback: Duration,
) -> Vec<Credit> {
    use std::collections::BTreeMap;
    let mut by_entity: BTreeMap<&str, (Vec<Touch>, Vec<Conversion>)> = BTreeMap::new();
    for touch in touches {
        by_entity
            .entry(&touch.entity)
            .or_default()
            .0
            .push(touch.clone());
    }
    for conversion in conversions {
        by_entity
            .entry(&conversion.entity)
            .or_default()
            .1
            .push(conversion.clone());
    }
    // Inputs in any order give the same answer: each entity's rows are sorted first.
    for (touches, conversions) in by_entity.values_mut() {
        touches.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        conversions.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
    }
    let weights = if model == Model::Markov {
        let paths = by_entity
            .values()
            .flat_map(|(t, c)| markov::entity_paths(t, c, lookback));
        markov::channel_weights(paths)
    } else {
        Default::default()
    };
    let weight = |channel: &str| weights.get(channel).copied().unwrap_or(0.0);
    let mut credits = Vec::new();
    for (touches, conversions) in by_entity.into_values() {
        credits.extend(credit_entity(
            &touches,
            &conversions,
            model,
            lookback,
            &weight,
        ));
    }
    credits.sort_by(|a, b| {
        a.conversion_id
            .cmp(&b.conversion_id)
            .then(a.position.cmp(&b.position))
    });
    credits
}

/// Parses a duration such as `30d`, `12h`, `90m` or `45s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; use 30d, 12h, 90m or 45s"))?;
    let seconds_per_unit = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("`{text}` has no unit; use 30d, 12h, 90m or 45s")),
    };
    // Checked: a typed-in `200000000000d` is an error, never an overflow.
    value
        .checked_mul(seconds_per_unit)
        .filter(|seconds| *seconds <= MAX_DURATION_SECONDS)
        .map(Duration::seconds)
        .ok_or_else(|| format!("`{text}` is too long; durations are at most 36500d (100 years)"))
}

/// The longest duration kpi accepts: 100 years, far beyond any lookback or half-life, and far
/// from the instants where date arithmetic overflows.
const MAX_DURATION_SECONDS: i64 = 36_500 * 86_400;

/// Parses a time-decay half-life: a duration longer than zero.
pub fn parse_half_life(text: &str) -> Result<Duration, String> {
    let half_life = parse_duration(text)?;
    if half_life <= Duration::zero() {
        return Err("the half-life must be longer than zero".into());
    }
    Ok(half_life)
}

#[cfg(test)]
mod tests;
