//! Tracking conventions (`[conventions]` in `kpi.toml`): the allowed values or patterns of the
//! UTM fields of web sessions, a pattern for ad campaign names, and the UTM fields a tagged
//! session must carry. Renamed or mis-cased UTMs are a top cause of broken channel reports;
//! these rules let the data-health section and `kpi check` say which rows break them.
//!
//! Each rule becomes a [`Rule`]: the landed table it reads (as landed, before the reporting
//! views clean it: a view that lower-cases UTMs would hide the problem), the predicate a
//! breaking row satisfies, and what a row carries (sessions, spend). Rules are validated here
//! (patterns compile, lists are not empty) and never see SQL from anywhere but this file and
//! the validated configuration.
//!
//! ```toml
//! [conventions]
//! utm_source = { pattern = "^[a-z0-9]+$" }
//! utm_medium = { allowed = ["cpc", "paid_social", "social", "email", "referral"] }
//! utm_campaign = { pattern = "^[a-z0-9]+(-[a-z0-9]+)*$" }
//! campaign_name = { pattern = "^[A-Z][A-Za-z0-9 ]*$" }
//! required = ["utm_source", "utm_medium", "utm_campaign"]
//! ```
//!
//! Semantics: a value rule judges rows where the field has a value (an empty field is judged
//! by `required`); `allowed` is an exact, case-sensitive list; `pattern` is a regular
//! expression that must match somewhere in the value (anchor it with `^...$` to match it
//! whole); `required` fields must be present and non-empty on every session that carries any
//! UTM field (untagged sessions, such as direct traffic, are not judged).

use serde::Deserialize;

/// The UTM fields a rule may name.
pub const UTM_FIELDS: [&str; 3] = ["utm_source", "utm_medium", "utm_campaign"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConventions {
    pub(super) utm_source: Option<RawValueRule>,
    pub(super) utm_medium: Option<RawValueRule>,
    pub(super) utm_campaign: Option<RawValueRule>,
    pub(super) campaign_name: Option<RawValueRule>,
    #[serde(default)]
    pub(super) required: Vec<String>,
    /// Table of web sessions (default `analytics.sessions`).
    pub(super) sessions_table: Option<String>,
    /// Table of ad campaign days (default `ads.campaign_daily`).
    pub(super) campaigns_table: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValueRule {
    pub(super) allowed: Option<Vec<String>>,
    pub(super) pattern: Option<String>,
}

/// One validated convention, ready to count breaking rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// What the rule says, for people (`utm_medium is one of cpc, email`).
    pub description: String,
    /// Landed table it reads (`analytics.sessions`).
    pub table: String,
    /// Column placing a row in a week.
    pub time_column: String,
    /// The field judged; its offending values are listed (`None` for a required-field rule,
    /// whose offending value is the missing field itself).
    pub column: Option<String>,
    /// SQL predicate true for rows that break the rule.
    pub breaks: String,
    /// What a row carries, in words (`sessions`, `spend`), and its measure.
    pub carries: (&'static str, &'static str),
}

/// The validated conventions of a project (none when `[conventions]` is absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conventions {
    /// Every rule, in the order of the file's keys.
    pub rules: Vec<Rule>,
}

/// Validates the raw section; problems are `(key, message)`.
pub(super) fn resolve(raw: RawConventions) -> (Conventions, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let sessions = raw
        .sessions_table
        .clone()
        .unwrap_or_else(|| "analytics.sessions".into());
    let campaigns = raw
        .campaigns_table
        .clone()
        .unwrap_or_else(|| "ads.campaign_daily".into());
    for (key, table) in [
        ("sessions_table", &sessions),
        ("campaigns_table", &campaigns),
    ] {
        if !is_table_name(table) {
            problems.push((
                key.to_string(),
                format!(
                    "`{table}` is not a table name; write source.table, such as analytics.sessions"
                ),
            ));
        }
    }
    let mut rules = Vec::new();
    let session_rows = ("sessions", "COUNT(DISTINCT session_id)");
    let fields = [
        (
            "utm_source",
            &raw.utm_source,
            &sessions,
            "started_at",
            session_rows,
        ),
        (
            "utm_medium",
            &raw.utm_medium,
            &sessions,
            "started_at",
            session_rows,
        ),
        (
            "utm_campaign",
            &raw.utm_campaign,
            &sessions,
            "started_at",
            session_rows,
        ),
        (
            "campaign_name",
            &raw.campaign_name,
            &campaigns,
            "date",
            ("spend", "SUM(spend)"),
        ),
    ];
    for (field, rule, table, time_column, carries) in fields {
        let Some(rule) = rule else { continue };
        match value_rule(field, rule) {
            Ok((description, breaks)) => rules.push(Rule {
                description,
                table: table.clone(),
                time_column: time_column.to_string(),
                column: Some(field.to_string()),
                breaks,
                carries,
            }),
            Err(message) => problems.push((field.to_string(), message)),
        }
    }
    let mut required = Vec::new();
    for field in &raw.required {
        if !UTM_FIELDS.contains(&field.as_str()) {
            problems.push((
                "required".into(),
                format!(
                    "`{field}` is not a UTM field; use {}",
                    UTM_FIELDS.join(", ")
                ),
            ));
        } else if !required.contains(field) {
            required.push(field.clone());
        }
    }
    let tagged = UTM_FIELDS
        .iter()
        .map(|f| format!("({f} IS NOT NULL AND {f} <> '')"))
        .collect::<Vec<_>>()
        .join(" OR ");
    for field in required {
        rules.push(Rule {
            description: format!("{field} is present on every tagged session"),
            table: sessions.clone(),
            time_column: "started_at".into(),
            column: None,
            breaks: format!("({field} IS NULL OR {field} = '') AND ({tagged})"),
            carries: session_rows,
        });
    }
    (Conventions { rules }, problems)
}

/// The description and breaking predicate of an `allowed` or `pattern` rule.
fn value_rule(field: &str, rule: &RawValueRule) -> Result<(String, String), String> {
    let present = format!("{field} IS NOT NULL AND {field} <> ''");
    match (&rule.allowed, &rule.pattern) {
        (Some(allowed), None) if !allowed.is_empty() => {
            let list = allowed
                .iter()
                .map(|v| quote(v))
                .collect::<Vec<_>>()
                .join(", ");
            Ok((
                format!("{field} is one of {}", allowed.join(", ")),
                format!("{present} AND {field} NOT IN ({list})"),
            ))
        }
        (Some(_), None) => Err(format!(
            "`{field}.allowed` is empty; list the values, such as allowed = [\"cpc\", \"email\"]"
        )),
        (None, Some(pattern)) => {
            regex::Regex::new(pattern)
                .map_err(|error| format!("`{field}.pattern` does not compile: {error}"))?;
            Ok((
                format!("{field} matches {pattern}"),
                format!("{present} AND NOT regexp_like({field}, {})", quote(pattern)),
            ))
        }
        _ => Err(format!(
            "`{field}` needs exactly one of `allowed` (a list) or `pattern` (a regular expression)"
        )),
    }
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn is_table_name(text: &str) -> bool {
    let mut parts = text.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Conventions, Vec<(String, String)>) {
        resolve(toml::from_str(text).expect("toml"))
    }

    #[test]
    fn rules_become_predicates_over_the_landed_tables() {
        let (conventions, problems) = parse(
            r#"
            utm_medium = { allowed = ["cpc", "it's"] }
            campaign_name = { pattern = "^[A-Z]" }
            required = ["utm_campaign"]
            "#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let rules = &conventions.rules;
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].table, "analytics.sessions");
        assert_eq!(
            rules[0].breaks,
            "utm_medium IS NOT NULL AND utm_medium <> '' AND utm_medium NOT IN ('cpc', 'it''s')"
        );
        assert_eq!(rules[1].table, "ads.campaign_daily");
        assert_eq!(rules[1].carries.0, "spend");
        assert!(rules[1]
            .breaks
            .contains("NOT regexp_like(campaign_name, '^[A-Z]')"));
        assert_eq!(rules[2].column, None);
        assert!(rules[2]
            .breaks
            .starts_with("(utm_campaign IS NULL OR utm_campaign = '') AND ("));
    }

    #[test]
    fn bad_rules_say_what_to_write() {
        let (_, problems) = parse(
            r#"
            utm_source = { pattern = "([a-z" }
            utm_medium = { allowed = [] }
            utm_campaign = { allowed = ["a"], pattern = "b" }
            required = ["utm_term"]
            sessions_table = "sessions; DROP"
            "#,
        );
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "sessions_table",
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "required"
            ]
        );
        assert!(problems[1].1.contains("does not compile"));
        assert!(problems[4]
            .1
            .contains("use utm_source, utm_medium, utm_campaign"));
    }
}
