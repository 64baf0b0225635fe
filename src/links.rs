//! Signed links: a report, chart, export or snapshot URL that works without a token until it
//! expires. The signature is HMAC-SHA256 over the link's scope and expiry, so a link cannot be
//! changed (another week, a later expiry) or moved to another report without failing.
//!
//! Scopes: `report:{dashboard}/{week}` covers the report page, its `.json` and `.csv` exports
//! and its charts; `snapshot:{dashboard}/{week}/{id}` covers one snapshot and its frozen
//! charts; `dashboard:{dashboard}` covers the redirect to its latest week. Keys rotate: links
//! signed with a key listed in `server.signing_keys_previous` stay valid.

use chrono::{DateTime, Utc};

use crate::config::Secret;

/// What a signed link gives access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A report page, its exports and its charts.
    Report {
        /// Dashboard name.
        dashboard: String,
        /// Week label.
        week: String,
    },
    /// One snapshot and its charts.
    Snapshot {
        /// Dashboard name.
        dashboard: String,
        /// Week label.
        week: String,
        /// Snapshot id.
        id: String,
    },
    /// The redirect to a dashboard's latest complete week.
    Dashboard {
        /// Dashboard name.
        dashboard: String,
    },
}

impl Scope {
    /// The scope a URL path belongs to, when it is one that can be shared.
    pub fn of_path(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let strip = |week: &str| {
            week.trim_end_matches(".json")
                .trim_end_matches(".csv")
                .to_string()
        };
        match parts.as_slice() {
            ["reports", dashboard] => Some(Self::Dashboard {
                dashboard: dashboard.to_string(),
            }),
            ["reports", dashboard, week] | ["charts", dashboard, week, _] => Some(Self::Report {
                dashboard: dashboard.to_string(),
                week: strip(week),
            }),
            ["snapshots", dashboard, week, id, ..] => Some(Self::Snapshot {
                dashboard: dashboard.to_string(),
                week: week.to_string(),
                id: id.trim_end_matches(".json").to_string(),
            }),
            _ => None,
        }
    }

    /// The path a shared link of this scope opens.
    pub fn path(&self) -> String {
        match self {
            Self::Report { dashboard, week } => format!("/reports/{dashboard}/{week}"),
            Self::Snapshot {
                dashboard,
                week,
                id,
            } => format!("/snapshots/{dashboard}/{week}/{id}"),
            Self::Dashboard { dashboard } => format!("/reports/{dashboard}"),
        }
    }

    fn message(&self, expires: i64) -> String {
        let scope = match self {
            Self::Report { dashboard, week } => format!("report:{dashboard}/{week}"),
            Self::Snapshot {
                dashboard,
                week,
                id,
            } => format!("snapshot:{dashboard}/{week}/{id}"),
            Self::Dashboard { dashboard } => format!("dashboard:{dashboard}"),
        };
        format!("{scope}\n{expires}")
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `exp` and `sig`, or not numbers and hex.
    Missing,
    /// The signature does not match this path and expiry under any key: changed or moved.
    Tampered,
    /// Valid, but its time has passed.
    Expired(i64),
}

/// Signs and checks links with the current key and any previous ones.
#[derive(Clone)]
pub struct Signer {
    current: Secret,
    previous: Vec<Secret>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(current, {} previous)", self.previous.len())
    }
}

impl Signer {
    /// A signer with `current` and the keys it replaced.
    pub fn new(current: Secret, previous: Vec<Secret>) -> Self {
        Self { current, previous }
    }

    /// The `exp=...&sig=...` query of a link to `scope` valid until `expires`.
    pub fn query(&self, scope: &Scope, expires: DateTime<Utc>) -> String {
        let expires = expires.timestamp();
        format!(
            "exp={expires}&sig={}",
            sign(&self.current, &scope.message(expires))
        )
    }

    /// A full link: `base` (the public URL), the scope's path and its signature.
    pub fn link(&self, base: &str, scope: &Scope, expires: DateTime<Utc>) -> String {
        format!(
            "{}{}?{}",
            base.trim_end_matches('/'),
            scope.path(),
            self.query(scope, expires)
        )
    }

    /// Checks `exp` and `sig` for `scope` at `now`.
    pub fn verify(
        &self,
        scope: &Scope,
        exp: Option<&str>,
        sig: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let (Some(exp), Some(sig)) = (exp, sig) else {
            return Err(Refusal::Missing);
        };
        let expires: i64 = exp.parse().map_err(|_| Refusal::Missing)?;
        let message = scope.message(expires);
        let valid = std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|key| constant_time_eq(sign(key, &message).as_bytes(), sig.as_bytes()));
        if !valid {
            return Err(Refusal::Tampered);
        }
        if expires < now.timestamp() {
            return Err(Refusal::Expired(expires));
        }
        Ok(())
    }
}

fn sign(key: &Secret, message: &str) -> String {
    crate::digest::hmac_sha256_hex(key.expose().as_bytes(), message.as_bytes())
}

/// Compares every byte, so the time taken does not reveal how much of a secret matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(Secret::new("current key"), vec![Secret::new("old key")])
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("time")
    }

    fn parts(query: &str) -> (String, String) {
        let (exp, sig) = query.split_once('&').expect("two parts");
        (
            exp.trim_start_matches("exp=").to_string(),
            sig.trim_start_matches("sig=").to_string(),
        )
    }

    #[test]
    fn a_link_verifies_until_it_expires() {
        let scope = Scope::of_path("/reports/weekly/2026-W45").expect("scope");
        let (exp, sig) = parts(&signer().query(&scope, at(1_000)));
        assert_eq!(
            signer().verify(&scope, Some(&exp), Some(&sig), at(999)),
            Ok(())
        );
        assert_eq!(
            signer().verify(&scope, Some(&exp), Some(&sig), at(1_001)),
            Err(Refusal::Expired(1_000))
        );
    }

    #[test]
    fn charts_and_exports_share_the_report_scope_but_not_other_weeks() {
        let scope = Scope::of_path("/reports/weekly/2026-W45").expect("scope");
        let (exp, sig) = parts(&signer().query(&scope, at(1_000)));
        for path in [
            "/reports/weekly/2026-W45.json",
            "/reports/weekly/2026-W45.csv",
            "/charts/weekly/2026-W45/pipeline.png",
        ] {
            let other = Scope::of_path(path).expect("scope");
            assert_eq!(
                signer().verify(&other, Some(&exp), Some(&sig), at(0)),
                Ok(()),
                "{path}"
            );
        }
        let moved = Scope::of_path("/reports/weekly/2026-W46").expect("scope");
        assert_eq!(
            signer().verify(&moved, Some(&exp), Some(&sig), at(0)),
            Err(Refusal::Tampered)
        );
        assert_eq!(
            signer().verify(&scope, Some("1001"), Some(&sig), at(0)),
            Err(Refusal::Tampered),
            "a later expiry"
        );
        assert_eq!(
            signer().verify(&scope, None, Some(&sig), at(0)),
            Err(Refusal::Missing)
        );
    }

    #[test]
    fn links_signed_with_a_previous_key_stay_valid() {
        let scope = Scope::of_path("/snapshots/weekly/2026-W45/abc").expect("scope");
        let old = Signer::new(Secret::new("old key"), Vec::new());
        let (exp, sig) = parts(&old.query(&scope, at(1_000)));
        assert_eq!(
            signer().verify(&scope, Some(&exp), Some(&sig), at(0)),
            Ok(())
        );
        let stranger = Signer::new(Secret::new("another key"), Vec::new());
        assert_eq!(
            stranger.verify(&scope, Some(&exp), Some(&sig), at(0)),
            Err(Refusal::Tampered)
        );
    }

    #[test]
    fn only_shareable_paths_have_a_scope() {
        assert_eq!(Scope::of_path("/definitions"), None);
        assert_eq!(Scope::of_path("/api/v1/sql"), None);
        assert_eq!(
            Scope::of_path("/snapshots/d/2026-W45/abc/charts/x.png"),
            Some(Scope::Snapshot {
                dashboard: "d".into(),
                week: "2026-W45".into(),
                id: "abc".into()
            })
        );
    }
}
