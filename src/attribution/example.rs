//! The worked example of `/attribution`: the reference edge cases (a verbatim copy of
//! `fixtures/attribution/edge_cases/{touches,conversions}.csv`, free to use), credited live.

use chrono::{DateTime, Utc};

use super::io::parse_cents;
use super::{Conversion, Touch};

const TOUCHES: &str = include_str!("example/touches.csv");
const CONVERSIONS: &str = include_str!("example/conversions.csv");

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split(',').collect())
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The example's touches, as landed (the duplicate row included).
pub fn touches() -> Vec<Touch> {
    rows(TOUCHES)
        .filter_map(|r| {
            Some(Touch {
                id: r.first()?.to_string(),
                entity: r.get(1)?.to_string(),
                ts: instant(r.get(2)?)?,
                channel: r.get(3)?.to_string(),
                campaign: r.get(4).filter(|c| !c.is_empty()).map(|c| c.to_string()),
            })
        })
        .collect()
}

/// The example's conversions.
pub fn conversions() -> Vec<Conversion> {
    rows(CONVERSIONS)
        .filter_map(|r| {
            Some(Conversion {
                id: r.first()?.to_string(),
                entity: r.get(1)?.to_string(),
                ts: instant(r.get(2)?)?,
                kind: r.get(3).map(|k| k.to_string()),
                revenue_cents: r.get(4).and_then(|v| parse_cents(v)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_example_is_the_reference_fixture_verbatim() {
        let fixtures =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/attribution/edge_cases");
        for (name, copy) in [
            ("touches.csv", super::TOUCHES),
            ("conversions.csv", super::CONVERSIONS),
        ] {
            let original = std::fs::read_to_string(fixtures.join(name)).expect("fixture");
            assert_eq!(copy, original, "src/attribution/example/{name} differs");
        }
        assert_eq!(super::touches().len(), 16);
        assert_eq!(super::conversions().len(), 8);
    }
}
