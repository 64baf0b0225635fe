//! The read-only gate in front of every analyst query (CLI `kpi query` and `POST /api/v1/sql`).
//!
//! Only a single `SELECT`/`WITH`/`VALUES` query passes. Everything else (DDL, DML, `COPY`,
//! `CREATE EXTERNAL TABLE`, `SET`, transactions, ...) is refused by name before planning, and the
//! plan is checked again with DataFusion's own [`SQLOptions`] as a second line of defence.
//! Files outside the data root cannot be reached: the engine has no URL tables and registers no
//! file-reading table functions, so the only tables a query sees are the discovered ones.

use std::sync::OnceLock;

use datafusion::common::tree_node::TreeNode;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::cache::Cache;
use crate::error::{Error, Result};

/// Statements that passed, by their SQL: a process plans the same view and metric SQL many
/// times (definitions, the serving views, the build session, each reach probe), and copying
/// a parsed statement costs a fraction of parsing it again.
const PARSED: usize = 256;

/// SQL longer than this is parsed every time (not worth holding).
const PARSED_SQL_BYTES: usize = 16 * 1024;

fn parsed() -> &'static Cache<String, DfStatement> {
    static PARSED_STATEMENTS: OnceLock<Cache<String, DfStatement>> = OnceLock::new();
    PARSED_STATEMENTS.get_or_init(|| Cache::new(PARSED))
}

/// Parses `sql` and returns the single read-only statement, or an error saying what is refused.
pub fn check_read_only(sql: &str) -> Result<DfStatement> {
    if let Some(statement) = parsed().get(&sql.to_string()) {
        return Ok(statement);
    }
    let statement = parse_read_only(sql)?;
    if sql.len() <= PARSED_SQL_BYTES {
        parsed().insert(sql.to_string(), statement.clone());
    }
    Ok(statement)
}

fn parse_read_only(sql: &str) -> Result<DfStatement> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|error| Error::input("sql_syntax", format!("SQL does not parse: {error}")))?;
    if statements.len() != 1 {
        return Err(Error::input(
            "multiple_statements",
            format!("send exactly one statement, got {}", statements.len()),
        ));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(Error::input(
            "multiple_statements",
            "send exactly one statement, got 0",
        ));
    };
    let refused = match &statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            Statement::Query(_) => return Ok(statement),
            other => describe(other),
        },
        DfStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE (reads files)".to_string(),
        DfStatement::CopyTo(_) => "COPY (writes files)".to_string(),
        DfStatement::Explain(_) => "EXPLAIN".to_string(),
        other => format!("{:.40}", other.to_string()),
    };
    Err(Error::input(
        "forbidden_statement",
        format!(
            "only read-only queries (SELECT, WITH, VALUES) are allowed here; refused: {refused}. \
             Tables are defined by the files under the data root and views by queries/*.sql"
        ),
    ))
}

/// Whether any expression of `plan` holds a subquery: a metric's measure and filter are
/// expressions over one relation, where a subquery cannot go (`kpi check` refuses them).
pub(crate) fn has_subquery(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(matches!(node, LogicalPlan::Subquery(_))
            || node.expressions().iter().any(|expr| {
                expr.exists(|e| {
                    Ok(matches!(
                        e,
                        Expr::ScalarSubquery(_)
                            | Expr::InSubquery(_)
                            | Expr::Exists(_)
                            | Expr::SetComparison(_)
                    ))
                })
                .unwrap_or(true)
            }))
    })
    .unwrap_or(true)
}

/// Checks a logical plan with DataFusion's guard: no DDL, no DML, no statements.
pub fn verify_plan(plan: &LogicalPlan) -> Result<()> {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(plan)
        .map_err(|error| Error::input("forbidden_statement", error.strip_backtrace()))
}

fn describe(statement: &Statement) -> String {
    let kind = match statement {
        Statement::Insert(_) => "INSERT (DML)",
        Statement::Update { .. } => "UPDATE (DML)",
        Statement::Delete(_) => "DELETE (DML)",
        Statement::Merge { .. } => "MERGE (DML)",
        Statement::Copy { .. } => "COPY",
        Statement::CreateTable(_) => "CREATE TABLE (DDL)",
        Statement::CreateView { .. } => "CREATE VIEW (DDL); add a file under queries/ instead",
        Statement::Drop { .. } => "DROP (DDL)",
        Statement::AlterTable { .. } => "ALTER TABLE (DDL)",
        Statement::Truncate { .. } => "TRUNCATE (DML)",
        Statement::CreateSchema { .. } => "CREATE SCHEMA (DDL)",
        Statement::Set(_) => "SET",
        _ => "",
    };
    if kind.is_empty() {
        let text = statement.to_string();
        let words: Vec<&str> = text.split_whitespace().take(3).collect();
        words.join(" ")
    } else {
        kind.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT 1",
            "select * from ads.campaign_daily where clicks > 3",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "VALUES (1), (2)",
            "SELECT 1;",
        ] {
            assert!(check_read_only(sql).is_ok(), "{sql}");
        }
    }

    #[test]
    fn a_statement_parsed_before_is_the_same_statement_and_a_refusal_stays_one() {
        for sql in [
            "SELECT 41 AS answer",
            "SELECT 42 AS answer",
            "SELECT 41 AS answer",
        ] {
            let parsed = check_read_only(sql).expect("parses");
            assert_eq!(parsed, parse_read_only(sql).expect("parses"), "{sql}");
            assert_eq!(parsed.to_string(), sql, "{sql}");
        }
        for _ in 0..2 {
            assert!(check_read_only("DROP TABLE ads.campaign_daily").is_err());
        }
    }

    #[test]
    fn writes_and_file_access_are_refused_by_name() {
        for (sql, word) in [
            ("DROP TABLE ads.campaign_daily", "DROP"),
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("INSERT INTO ads.campaign_daily VALUES (1)", "INSERT"),
            ("DELETE FROM ads.campaign_daily", "DELETE"),
            ("UPDATE ads.campaign_daily SET clicks = 0", "UPDATE"),
            ("COPY (SELECT 1) TO '/tmp/out.parquet'", "COPY"),
            (
                "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
                "CREATE EXTERNAL TABLE",
            ),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
        ] {
            let error = check_read_only(sql).expect_err(sql);
            assert_eq!(error.code, "forbidden_statement", "{sql}");
            assert!(error.message.contains(word), "{sql}: {}", error.message);
        }
    }

    #[test]
    fn several_statements_are_refused() {
        let error = check_read_only("SELECT 1; DROP TABLE x").expect_err("two statements");
        assert_eq!(error.code, "multiple_statements");
    }

    #[test]
    fn syntax_errors_are_input_errors() {
        let error = check_read_only("SELEC 1").expect_err("typo");
        assert_eq!(error.code, "sql_syntax");
    }
}
