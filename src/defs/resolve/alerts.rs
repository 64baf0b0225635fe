//! Alerts: `[[alert]]` of a dashboard → validated [`Alert`]s. Each names a known metric (and
//! filters by its dimensions), exactly one condition, and at least one place to deliver; a name
//! is unique across the project so `kpi alerts snooze NAME` means one alert.

use std::collections::BTreeMap;

use super::Resolver;
use crate::config::line_of;
use crate::defs::{raw, Alert, AlertCondition, Comparison, Metric, SourceFile};

impl Resolver<'_> {
    /// Validates the alerts of one dashboard file.
    pub(super) fn resolve_alerts(
        &mut self,
        file: &SourceFile,
        metrics: &BTreeMap<String, Metric>,
        raw_alerts: &[raw::RawAlert],
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        for raw_alert in raw_alerts {
            let line = line_of(&file.text, raw_alert.name.span().start);
            let name = raw_alert.name.get_ref().clone();
            let before = self.problems.len();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                self.report(
                    &file.path,
                    line,
                    format!("alert name `{name}` is not a slug"),
                    Some("use lowercase letters, digits and `-`, such as mqls-drop".into()),
                );
            }
            if let Some(other) = self.alert_names.get(&name) {
                self.report(
                    &file.path,
                    line,
                    format!("alert `{name}` is declared twice (also in {other})"),
                    Some("alert names are unique across dashboards; rename one".into()),
                );
            }
            let metric_name = raw_alert.metric.get_ref();
            let metric_line = line_of(&file.text, raw_alert.metric.span().start);
            match metrics.get(metric_name) {
                // Declared with problems of its own, reported once already.
                None if self.declared_metrics.contains(metric_name) => {}
                None => self.report(
                    &file.path,
                    metric_line,
                    format!("alert `{name}`: no metric named `{metric_name}`"),
                    Some("name a metric of metrics/; `kpi check` lists them".into()),
                ),
                Some(metric) => {
                    for dimension in raw_alert.filter.keys() {
                        if !metric.dimensions.contains(dimension) {
                            self.report(
                                &file.path,
                                metric_line,
                                format!("alert `{name}`: metric `{metric_name}` has no dimension `{dimension}`"),
                                Some(format!("its dimensions: {}", metric.dimensions.join(", "))),
                            );
                        }
                    }
                }
            }
            let condition = self.alert_condition(file, line, &name, raw_alert);
            let mut to = Vec::new();
            for recipient in &raw_alert.to {
                if recipient
                    .get_ref()
                    .parse::<lettre::message::Mailbox>()
                    .is_err()
                {
                    self.report(
                        &file.path,
                        line_of(&file.text, recipient.span().start),
                        format!(
                            "alert `{name}`: `{}` is not an email address",
                            recipient.get_ref()
                        ),
                        Some("write it as name@example.com".into()),
                    );
                } else {
                    to.push(recipient.get_ref().clone());
                }
            }
            let webhook = raw_alert.webhook.as_ref().map(|w| w.get_ref().clone());
            if let Some(url) = &raw_alert.webhook {
                let parsed = url::Url::parse(url.get_ref());
                if !parsed.is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                    self.report(
                        &file.path,
                        line_of(&file.text, url.span().start),
                        format!(
                            "alert `{name}`: webhook `{}` is not an http(s) URL",
                            url.get_ref()
                        ),
                        Some(
                            "write the full URL, such as https://hooks.slack.com/services/..."
                                .into(),
                        ),
                    );
                }
            }
            if webhook.is_none() && raw_alert.to.is_empty() {
                self.report(
                    &file.path,
                    line,
                    format!("alert `{name}` has nowhere to deliver"),
                    Some(
                        "add `webhook = \"https://...\"` and/or `to = [\"name@example.com\"]`"
                            .into(),
                    ),
                );
            }
            self.alert_names
                .insert(name.clone(), format!("{}:{line}", file.path.display()));
            if self.problems.len() > before {
                continue;
            }
            if let (Some(condition), true) = (condition, metrics.contains_key(metric_name)) {
                alerts.push(Alert {
                    name,
                    metric: metric_name.clone(),
                    filter: raw_alert
                        .filter
                        .iter()
                        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
                        .collect(),
                    condition,
                    webhook,
                    to,
                });
            }
        }
        alerts
    }

    /// Exactly one condition, with its comparison for change conditions.
    fn alert_condition(
        &mut self,
        file: &SourceFile,
        line: usize,
        name: &str,
        raw_alert: &raw::RawAlert,
    ) -> Option<AlertCondition> {
        let against = match &raw_alert.against {
            None => Comparison::Previous,
            Some(text) => match Comparison::parse(text.get_ref()) {
                Some(c) => c,
                None => {
                    self.report(
                        &file.path,
                        line_of(&file.text, text.span().start),
                        format!("alert `{name}`: unknown comparison `{}`", text.get_ref()),
                        Some("use previous, year_ago or trailing_4".into()),
                    );
                    return None;
                }
            },
        };
        let min_baseline = raw_alert.min_baseline.unwrap_or(0.0);
        let mut conditions = Vec::new();
        if let Some(v) = raw_alert.below {
            conditions.push(AlertCondition::Below(v));
        }
        if let Some(v) = raw_alert.above {
            conditions.push(AlertCondition::Above(v));
        }
        if let Some(ratio) = raw_alert.change_below {
            conditions.push(AlertCondition::ChangeBelow {
                ratio,
                against,
                min_baseline,
            });
        }
        if let Some(ratio) = raw_alert.change_above {
            conditions.push(AlertCondition::ChangeAbove {
                ratio,
                against,
                min_baseline,
            });
        }
        if let Some(share) = raw_alert.behind_target {
            conditions.push(AlertCondition::BehindTarget(share));
        }
        if raw_alert.no_data == Some(true) {
            conditions.push(AlertCondition::NoData);
        }
        let changes = raw_alert.change_below.is_some() || raw_alert.change_above.is_some();
        if !changes && (raw_alert.against.is_some() || raw_alert.min_baseline.is_some()) {
            self.report(
                &file.path,
                line,
                format!("alert `{name}`: `against` and `min_baseline` apply to change_below and change_above only"),
                None,
            );
        }
        if conditions.len() != 1 {
            self.report(
                &file.path,
                line,
                format!("alert `{name}` needs exactly one condition, found {}", conditions.len()),
                Some("use one of below, above, change_below, change_above, behind_target, no_data = true".into()),
            );
            return None;
        }
        conditions.pop()
    }
}
