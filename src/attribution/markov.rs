//! First-order Markov removal effects, computed exactly.
//!
//! Paths become a chain `start → channel → ... → (conversion | null)`, with consecutive repeats
//! of a channel collapsed (self-loops dropped). The probability of reaching `conversion` from
//! `start` is found by solving the absorbing chain's linear system exactly (Gaussian
//! elimination; no simulation). A channel's removal effect is `1 - P(conv without it) / P(conv)`,
//! where removing it sends every transition into it to `null`. Channel weights are the removal
//! effects normalised to sum to 1. This is a channel-level model, not Google's proprietary
//! data-driven attribution.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;

use super::{path, Conversion, Touch};

/// A path with how many times it ended in a conversion and how many times it did not.
#[derive(Debug, Clone, PartialEq)]
pub struct PathCount {
    /// Channels in order.
    pub channels: Vec<String>,
    /// Conversions that followed this path.
    pub conversions: f64,
    /// Times the path ended without a conversion.
    pub nulls: f64,
}

/// Returns one entity's paths: one converting path per conversion (its window), and one
/// non-converting path of the touches after its last conversion (all of them if it never
/// converted), limited to the lookback before the last of those touches.
pub fn entity_paths(
    touches: &[Touch],
    conversions: &[Conversion],
    lookback: Duration,
) -> Vec<PathCount> {
    let mut paths: Vec<PathCount> = conversions
        .iter()
        .map(|conversion| PathCount {
            channels: path(touches, conversion, lookback)
                .iter()
                .map(|t| t.channel.clone())
                .collect(),
            conversions: 1.0,
            nulls: 0.0,
        })
        .filter(|p| !p.channels.is_empty())
        .collect();
    let last_conversion = conversions.iter().map(|c| c.ts).max();
    let mut tail: Vec<&Touch> = touches
        .iter()
        .filter(|t| last_conversion.is_none_or(|last| t.ts > last))
        .collect();
    tail.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
    tail.dedup_by(|later, earlier| later.id == earlier.id);
    if let Some(end) = tail.last().map(|t| t.ts) {
        let channels: Vec<String> = tail
            .iter()
            .filter(|t| t.ts >= end - lookback)
            .map(|t| t.channel.clone())
            .collect();
        paths.push(PathCount {
            channels,
            conversions: 0.0,
            nulls: 1.0,
        });
    }
    paths
}

/// Conversions and non-conversions per channel path, added up over entities.
pub type PathCounts = HashMap<Vec<String>, (f64, f64)>;

/// Adds `sign` times a path's conversions and non-conversions to `counts`.
pub fn count_path(counts: &mut PathCounts, path: PathCount, sign: f64) {
    let entry = counts.entry(path.channels).or_default();
    entry.0 += sign * path.conversions;
    entry.1 += sign * path.nulls;
}

/// Channel weights of added-up path counts. Paths are taken in channel order (so the chain's
/// states are numbered the same whatever order the entities came in); a path whose counts add
/// up to nothing is left out.
pub fn weights_of(counts: PathCounts) -> BTreeMap<String, f64> {
    let mut paths: Vec<PathCount> = counts
        .into_iter()
        .filter(|(_, (conversions, nulls))| *conversions != 0.0 || *nulls != 0.0)
        .map(|(channels, (conversions, nulls))| PathCount {
            channels,
            conversions,
            nulls,
        })
        .collect();
    paths.sort_by(|a, b| a.channels.cmp(&b.channels));
    channel_weights(paths)
}

struct Chain {
    channels: Vec<String>,
    from_start: Vec<f64>,
    transitions: Vec<Vec<f64>>,
    to_conversion: Vec<f64>,
    totals: Vec<f64>,
    start_total: f64,
}

fn build_chain(paths: impl IntoIterator<Item = PathCount>) -> Chain {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut collapsed: Vec<(Vec<usize>, f64, f64)> = Vec::new();
    for path in paths {
        if path.channels.is_empty() || path.conversions + path.nulls <= 0.0 {
            continue;
        }
        let mut states: Vec<usize> = Vec::new();
        for channel in path.channels {
            let next = index.len();
            let state = *index.entry(channel).or_insert(next);
            if states.last() != Some(&state) {
                states.push(state);
            }
        }
        collapsed.push((states, path.conversions, path.nulls));
    }
    let n = index.len();
    let mut channels = vec![String::new(); n];
    for (name, i) in &index {
        channels[*i] = name.clone();
    }
    let mut chain = Chain {
        channels,
        from_start: vec![0.0; n],
        transitions: vec![vec![0.0; n]; n],
        to_conversion: vec![0.0; n],
        totals: vec![0.0; n],
        start_total: 0.0,
    };
    for (states, conversions, nulls) in collapsed {
        let weight = conversions + nulls;
        chain.from_start[states[0]] += weight;
        chain.start_total += weight;
        for pair in states.windows(2) {
            chain.transitions[pair[0]][pair[1]] += weight;
            chain.totals[pair[0]] += weight;
        }
        let last = states[states.len() - 1];
        chain.to_conversion[last] += conversions;
        chain.totals[last] += weight;
    }
    chain
}

/// Probability of conversion from `start`, with the channels in `removed` sending to null.
fn conversion_probability(chain: &Chain, removed: Option<usize>) -> f64 {
    let n = chain.channels.len();
    if n == 0 || chain.start_total <= 0.0 {
        return 0.0;
    }
    // x_i = sum_j P(i→j) x_j + P(i→conv);  (I - Q) x = r.
    let mut matrix = vec![vec![0.0; n + 1]; n];
    for (i, row) in matrix.iter_mut().enumerate() {
        row[i] = 1.0;
        if Some(i) == removed || chain.totals[i] <= 0.0 {
            continue;
        }
        for (j, cell) in row.iter_mut().take(n).enumerate() {
            if Some(j) != removed {
                *cell -= chain.transitions[i][j] / chain.totals[i];
            }
        }
        row[n] = chain.to_conversion[i] / chain.totals[i];
    }
    let x = solve(matrix);
    (0..n)
        .filter(|i| Some(*i) != removed)
        .map(|i| chain.from_start[i] / chain.start_total * x[i])
        .sum()
}

/// Gaussian elimination with partial pivoting on an augmented matrix.
fn solve(mut m: Vec<Vec<f64>>) -> Vec<f64> {
    let n = m.len();
    for column in 0..n {
        let pivot = (column..n)
            .max_by(|&a, &b| m[a][column].abs().total_cmp(&m[b][column].abs()))
            .unwrap_or(column);
        m.swap(column, pivot);
        let diagonal = m[column][column];
        if diagonal.abs() < 1e-15 {
            continue;
        }
        m[column]
            .iter_mut()
            .skip(column)
            .for_each(|value| *value /= diagonal);
        let pivot_row = m[column].clone();
        for (row_index, row) in m.iter_mut().enumerate() {
            let factor = row[column];
            if row_index != column && factor != 0.0 {
                for (value, pivot_value) in row.iter_mut().zip(&pivot_row).skip(column) {
                    *value -= factor * pivot_value;
                }
            }
        }
    }
    m.iter().map(|row| row[n]).collect()
}

/// Returns each channel's relative removal effect `1 - P(conv without it) / P(conv)`.
pub fn removal_effects(paths: impl IntoIterator<Item = PathCount>) -> BTreeMap<String, f64> {
    let chain = build_chain(paths);
    let base = conversion_probability(&chain, None);
    let mut effects = BTreeMap::new();
    for (i, channel) in chain.channels.iter().enumerate() {
        let without = conversion_probability(&chain, Some(i));
        let effect = if base > 0.0 {
            1.0 - without / base
        } else {
            0.0
        };
        effects.insert(channel.clone(), effect.max(0.0));
    }
    effects
}

/// Returns each channel's weight: its removal effect over the sum of all removal effects.
pub fn channel_weights(paths: impl IntoIterator<Item = PathCount>) -> BTreeMap<String, f64> {
    let mut effects = removal_effects(paths);
    let total: f64 = effects.values().sum();
    if total > 0.0 {
        effects.values_mut().for_each(|effect| *effect /= total);
    }
    effects
}
