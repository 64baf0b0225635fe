//! HTML from templates: every page kpi serves and the email body, rendered by minijinja from
//! templates embedded in the binary (`templates/`), with one stylesheet (`templates/style.css`).
//!
//! Escaping is on for every value (the formatter below escapes `& < > " '`); markup made in
//! Rust (chart SVGs, sparklines) is passed in marked safe. Filters format numbers exactly as
//! the API and CSV do: `value(unit, currency, compact)` for people (money with its symbol,
//! compact where a reader scans), `raw` for `data-value` attributes (Rust's
//! shortest round-trip form), `change` for signed percentages.

use std::sync::OnceLock;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind};

use crate::defs::{Choice, Good, Unit};
use crate::metrics::format_display;

/// The stylesheet of every page and of the email.
pub const STYLE: &str = include_str!("templates/style.css");

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("report.html", include_str!("templates/report.html")),
    ("snapshot.html", include_str!("templates/snapshot.html")),
    ("email.html", include_str!("templates/email.html")),
    ("index.html", include_str!("templates/index.html")),
    ("catalog.html", include_str!("templates/catalog.html")),
    ("definition.html", include_str!("templates/definition.html")),
    ("sends.html", include_str!("templates/sends.html")),
    (
        "attribution.html",
        include_str!("templates/attribution.html"),
    ),
    ("refused.html", include_str!("templates/refused.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
];

/// Escapes text for HTML (also for attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Marks markup made in Rust (an SVG) as safe to insert unescaped.
pub fn safe(markup: String) -> Value {
    Value::from_safe_string(markup)
}

/// Renders the template `name` with `context`.
pub fn render(name: &str, context: Value) -> crate::Result<String> {
    environment()
        .get_template(name)
        .and_then(|template| template.render(context))
        .map_err(|error| crate::Error::internal(format!("template {name}: {error:#}")))
}

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_formatter(|out, state, value| {
            if value.is_none() || value.is_undefined() {
                return Ok(());
            }
            let text = value.to_string();
            if value.is_safe() || state.auto_escape() == AutoEscape::None {
                out.write_str(&text)?;
            } else {
                out.write_str(&escape(&text))?;
            }
            Ok(())
        });
        env.add_global("style", Value::from_safe_string(STYLE.to_string()));
        env.add_filter(
            "value",
            |value: Value,
             unit: &str,
             currency: Option<String>,
             compact: Option<bool>|
             -> Result<String, Error> {
                let unit = Unit::from_name(unit).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, format!("unknown unit {unit}"))
                })?;
                Ok(format_display(
                    unit,
                    currency.as_deref(),
                    number(&value),
                    compact.unwrap_or(false),
                ))
            },
        );
        env.add_filter("raw", |value: Value| {
            number(&value).map(|v| v.to_string()).unwrap_or_default()
        });
        env.add_filter("change", |value: Value| {
            number(&value)
                .map(|r| format!("{:+.1}%", r * 100.0))
                .unwrap_or_else(|| "—".into())
        });
        env.add_filter("percent0", |value: Value| {
            number(&value)
                .map(|r| format!("{:.0}%", r * 100.0))
                .unwrap_or_default()
        });
        env.add_filter("change_class", |value: Value, good: &str| {
            change_class(number(&value), Good::from_name(good).unwrap_or(Good::Up))
        });
        for (name, source) in TEMPLATES {
            // The templates are part of the binary; a syntax error is caught by the tests.
            if let Err(error) = env.add_template(name, source) {
                tracing::error!("template {name} does not parse: {error:#}");
            }
        }
        env
    })
}

/// The number a template value holds (`none` and non-numbers: no number).
fn number(value: &Value) -> Option<f64> {
    if value.is_none() || value.is_undefined() {
        return None;
    }
    f64::try_from(value.clone()).ok()
}

/// The colour class of a change: green in the good direction, red in the bad one, grey for
/// no change, no base, or a neutral KPI.
pub fn change_class(ratio: Option<f64>, good: Good) -> &'static str {
    match ratio {
        Some(r) if r.abs() < 1e-12 => "flat",
        Some(r) if (r > 0.0) == (good != Good::Down) && good != Good::Neutral => "up",
        Some(_) if good == Good::Neutral => "flat",
        Some(_) => "down",
        None => "flat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = environment();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name} does not parse");
        }
    }

    #[test]
    fn values_are_escaped_and_safe_markup_is_not() {
        let env = environment();
        let html = env
            .render_str(
                "{{ text }}|{{ svg }}|{{ n|raw }}|{{ n|value('currency') }}|{{ none_value|value('count') }}",
                minijinja::context! {
                    text => "<b>\"Tom's\" & co</b>",
                    svg => safe("<svg></svg>".into()),
                    n => 1234.5,
                    none_value => Value::from(()),
                },
            )
            .expect("render");
        assert_eq!(
            html,
            "&lt;b&gt;&quot;Tom&#39;s&quot; &amp; co&lt;/b&gt;|<svg></svg>|1234.5|1,234.50|—"
        );
    }

    #[test]
    fn changes_are_coloured_by_the_good_direction() {
        assert_eq!(change_class(Some(0.1), Good::Up), "up");
        assert_eq!(change_class(Some(0.1), Good::Down), "down");
        assert_eq!(change_class(Some(-0.1), Good::Down), "up");
        assert_eq!(change_class(Some(0.1), Good::Neutral), "flat");
        assert_eq!(change_class(Some(0.0), Good::Up), "flat");
        assert_eq!(change_class(None, Good::Up), "flat");
    }
}
