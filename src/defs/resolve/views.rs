//! Views: `queries/*.sql` ordered by their references, cycles reported, each planned; and
//! the attribution table made available when its inputs exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{find_line, first_line, sql_error_line, Resolver, IN_CYCLE};
use crate::config::is_identifier;
use crate::defs::{SourceFile, QUERIES_DIR};
use crate::engine::{ViewDef, REPORTING_SCHEMA};

/// A view file with a valid name and the `reporting.` views it reads.
struct Pending<'f> {
    file: &'f SourceFile,
    name: String,
    deps: Vec<String>,
}

impl Resolver<'_> {
    /// Checks a view file's name and parses the views it reads; `None` after a problem.
    fn pending_view<'f>(&mut self, file: &'f SourceFile) -> Option<Pending<'f>> {
        let stem = file
            .path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if !is_identifier(&stem) {
            self.report(&file.path, 1, format!("`{stem}` is not a valid view name"),
                Some("name the file with lowercase letters, digits and `_`, such as clean_sessions.sql".into()));
            return None;
        }
        let references = match self.sandbox.table_references(&file.text) {
            Ok(references) => references,
            Err(error) => {
                let line = sql_error_line(&file.text, &error.message);
                self.report(
                    &file.path,
                    line,
                    error.message,
                    Some("a view is one SELECT statement".into()),
                );
                return None;
            }
        };
        let deps = references
            .iter()
            .filter_map(|reference| {
                reference
                    .to_ascii_lowercase()
                    .strip_prefix("reporting.")
                    .map(str::to_string)
            })
            .collect();
        Some(Pending {
            file,
            name: stem,
            deps,
        })
    }

    /// Orders `queries/*.sql` by their references to each other and plans them in that order.
    pub(super) async fn resolve_views<'f>(
        &mut self,
        files: impl Iterator<Item = &'f SourceFile>,
    ) -> Vec<ViewDef> {
        let mut pending: BTreeMap<String, Pending<'f>> = BTreeMap::new();
        for file in files {
            if let Some(item) = self.pending_view(file) {
                pending.insert(item.name.clone(), item);
            }
        }

        // Depth-first topological order; a back edge is a cycle.
        let mut order: Vec<String> = Vec::new();
        let mut state: HashMap<String, u8> = HashMap::new(); // 1 = visiting, 2 = done, IN_CYCLE
        let deps: HashMap<String, Vec<String>> = pending
            .iter()
            .map(|(name, item)| (name.clone(), item.deps.clone()))
            .collect();
        let paths: HashMap<String, PathBuf> = pending
            .iter()
            .map(|(name, item)| (name.clone(), item.file.path.clone()))
            .collect();
        for name in pending.keys() {
            let mut stack: Vec<String> = Vec::new();
            self.visit(name, &deps, &mut state, &mut stack, &mut order, &paths);
        }

        let mut views = Vec::new();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for name in order {
            if state.get(&name) == Some(&IN_CYCLE) {
                failed.insert(name.clone());
                continue;
            }
            let Some(item) = pending.get(&name) else {
                continue;
            };
            if let Some(bad) = item.deps.iter().find(|dep| failed.contains(*dep)) {
                failed.insert(name.clone());
                let line = find_line(&item.file.text, bad);
                self.report(
                    &item.file.path,
                    line,
                    format!("depends on reporting.{bad}, which has errors (see above)"),
                    None,
                );
                continue;
            }
            let mut broken = false;
            for missing in item.deps.iter().filter(|dep| !pending.contains_key(*dep)) {
                broken = true;
                let line = find_line(&item.file.text, missing);
                self.report(
                    &item.file.path,
                    line,
                    format!("unknown view reporting.{missing}"),
                    Some(format!("add queries/{missing}.sql or fix the name")),
                );
            }
            // Landed references are checked even when a view is missing: report everything.
            if self.check_landed_references(&item.file.path, &item.file.text) || broken {
                failed.insert(name.clone());
                continue;
            }
            match self.sandbox.add_view(&item.name, &item.file.text).await {
                Ok(_) => {
                    let sources = self.sources_of(&item.file.text);
                    self.view_sources.insert(name.clone(), sources);
                    views.push(ViewDef {
                        name: name.clone(),
                        sql: item.file.text.clone(),
                    });
                }
                Err(error) => {
                    failed.insert(name.clone());
                    let line = sql_error_line(&item.file.text, &error.message);
                    self.report(
                        &item.file.path,
                        line,
                        format!("view does not plan: {}", first_line(&error.message)),
                        None,
                    );
                }
            }
        }
        views
    }

    /// Makes `reporting.attribution` available when the touches and conversions relations named
    /// in `kpi.toml` exist and have the contract's columns. Its source of truth is the
    /// conversions' source: the touches only distribute the credit of conversions that source
    /// counts (the one documented exception to "a metric reads only its own source").
    pub(super) async fn resolve_attribution(&mut self) {
        use crate::attribution::table::{
            missing_columns, AttributionTable, Cache, CONVERSION_COLUMNS, TABLE_NAME, TOUCH_COLUMNS,
        };
        let inputs = self.config.attribution.clone();
        let mut complete = true;
        for (name, required) in [
            (&inputs.touches, TOUCH_COLUMNS),
            (&inputs.conversions, CONVERSION_COLUMNS),
        ] {
            let (path, defined) = match name.split_once('.') {
                Some((REPORTING_SCHEMA, view)) => (
                    Path::new(QUERIES_DIR).join(format!("{view}.sql")),
                    self.view_sources.contains_key(view),
                ),
                _ => (
                    PathBuf::from(crate::config::CONFIG_FILE),
                    self.tables.contains(name),
                ),
            };
            if !defined {
                complete = false;
                continue;
            }
            let Ok(plan) = self.sandbox.plan(&format!("SELECT * FROM {name}")).await else {
                complete = false;
                continue;
            };
            let missing = missing_columns(plan.schema().as_arrow(), &required);
            if !missing.is_empty() {
                complete = false;
                self.report(
                    &path,
                    1,
                    format!(
                        "`{name}` is an attribution input ([attribution] in kpi.toml) but has no column(s) {}",
                        missing.join(", ")
                    ),
                    Some(format!("alias columns so that it has {}", required.join(", "))),
                );
            }
        }
        if !complete {
            return;
        }
        let table = AttributionTable::new(&inputs, inputs.default, Arc::new(Cache::default()));
        if self.sandbox.add_table(TABLE_NAME, Arc::new(table)).is_ok() {
            let sources = self.sources_of(&format!("SELECT * FROM {}", inputs.conversions));
            self.view_sources.insert(TABLE_NAME.to_string(), sources);
        }
    }

    fn visit(
        &mut self,
        name: &str,
        deps: &HashMap<String, Vec<String>>,
        state: &mut HashMap<String, u8>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
        paths: &HashMap<String, PathBuf>,
    ) {
        match state.get(name) {
            Some(2) | Some(&IN_CYCLE) => return,
            Some(1) => {
                let start = stack.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..]
                    .iter()
                    .map(|n| format!("reporting.{n}"))
                    .collect();
                cycle.push(format!("reporting.{name}"));
                for member in &stack[start..] {
                    state.insert(member.clone(), IN_CYCLE);
                }
                let path = paths.get(name).cloned().unwrap_or_default();
                self.report(
                    &path,
                    1,
                    format!(
                        "views reference each other in a cycle: {}",
                        cycle.join(" → ")
                    ),
                    Some(
                        "break the cycle: a view may only read views that do not read it back"
                            .into(),
                    ),
                );
                return;
            }
            _ => {}
        }
        if !deps.contains_key(name) {
            return;
        }
        state.insert(name.to_string(), 1);
        stack.push(name.to_string());
        for dep in deps.get(name).cloned().unwrap_or_default() {
            self.visit(&dep, deps, state, stack, order, paths);
        }
        stack.pop();
        if state.get(name) != Some(&IN_CYCLE) {
            state.insert(name.to_string(), 2);
        }
        order.push(name.to_string());
    }

    /// Reports references to landed tables that do not exist; returns whether any was found.
    fn check_landed_references(&mut self, path: &Path, sql: &str) -> bool {
        let Ok(references) = self.sandbox.table_references(sql) else {
            return false;
        };
        let mut bad = false;
        for reference in references {
            let reference = reference.to_ascii_lowercase();
            if reference.starts_with("reporting.") || reference.starts_with("information_schema.") {
                continue;
            }
            if !self.tables.contains(&reference) {
                bad = true;
                let line = find_line(sql, &reference);
                let hint = self.table_hint(&reference);
                self.report(
                    path,
                    line,
                    format!("unknown table `{reference}`"),
                    Some(hint),
                );
            }
        }
        bad
    }
}
