//! SQL statement classification with a real parser.
//!
//! A statement reads when it is a query without `SELECT … INTO` and without data-modifying
//! common table expressions, a `SHOW …`, or an `EXPLAIN` that does not execute its statement.
//! Every other statement kind counts as writing, so a kind this code has not met errs on the
//! safe side. Functions with side effects inside a `SELECT` cannot be seen by a parser.

use sqlparser::ast::{Query, SetExpr, Statement};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// Longest SQL text parsed, in bytes.
const MAX_SQL_BYTES: usize = 256 * 1024;

/// Whether every statement of `sql` only reads. An error when the text does not parse.
pub(crate) fn is_read_only(sql: &str) -> Result<bool, String> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(format!("SQL text is longer than {MAX_SQL_BYTES} bytes"));
    }
    let statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| format!("SQL does not parse: {e}"))?;
    if statements.is_empty() {
        return Err("SQL holds no statement".to_owned());
    }
    Ok(statements.iter().all(statement_reads))
}

fn statement_reads(s: &Statement) -> bool {
    match s {
        Statement::Query(q) => query_reads(q),
        Statement::Explain {
            analyze,
            options,
            statement,
            ..
        } => (!analyze && options.is_none()) || statement_reads(statement),
        Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => true,
        _ => false,
    }
}

fn query_reads(q: &Query) -> bool {
    let ctes_read = q
        .with
        .as_ref()
        .is_none_or(|w| w.cte_tables.iter().all(|cte| query_reads(&cte.query)));
    ctes_read && set_expr_reads(&q.body)
}

fn set_expr_reads(e: &SetExpr) -> bool {
    match e {
        SetExpr::Select(select) => select.into.is_none(),
        SetExpr::Query(q) => query_reads(q),
        SetExpr::SetOperation { left, right, .. } => set_expr_reads(left) && set_expr_reads(right),
        SetExpr::Values(_) | SetExpr::Table(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statements() {
        for sql in [
            "SELECT * FROM t WHERE a = 1",
            "select a from t union select b from u",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "SELECT 1; SELECT 2",
        ] {
            assert_eq!(is_read_only(sql), Ok(true), "{sql}");
        }
        for sql in [
            "INSERT INTO t VALUES (1)",
            "update t set a = 1",
            "DELETE FROM t",
            "DROP TABLE t",
            "SELECT 1; DROP TABLE t",
            "SELECT * INTO t2 FROM t",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "EXPLAIN ANALYZE DELETE FROM t",
            "CREATE TABLE t (a int)",
            "GRANT ALL ON t TO bob",
            "TRUNCATE t",
        ] {
            assert_eq!(is_read_only(sql), Ok(false), "{sql}");
        }
        assert!(is_read_only("SELEC * FROM").is_err());
        assert!(is_read_only("").is_err());
    }
}
