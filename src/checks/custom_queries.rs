//! Custom SQL metrics (`queries:`): the user's SQL run in the background on each query's own
//! schedule, its rows cached per database and rendered at the next scrape, never run by one.
//!
//! A query runs on a read-only connection ([`crate::sqlite::connection`]) as one autocommit
//! statement, bounded by its `timeout` and the cancel flag ([`crate::sqlite::interrupt`]), so
//! no snapshot outlives it. Each row is one series of every value column's family, labelled
//! with `database` and the row's label columns. A run that fails — the statement does not
//! prepare, a column is missing, a value is not a number, two rows carry the same labels, the
//! timeout — keeps none of its rows: `sqlite_custom_query_success` says 0 and the query's
//! series are absent until a run succeeds again.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde::Serialize;

use crate::collect::series::{flag, intern, Family, Gauge, Series};
use crate::config::CustomQuery;
use crate::sqlite::interrupt::{self, Stop};

/// Why a run of a custom query produced no rows.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// The run outlived its timeout or was cancelled.
    #[error("query stopped: {0}")]
    Interrupted(Stop),
    /// A named column is not among the statement's columns.
    #[error("column {column:?} is not among the statement's columns ({found})")]
    MissingColumn {
        /// The configured column.
        column: String,
        /// The statement's columns.
        found: String,
    },
    /// A value column held something other than a number.
    #[error("row {row}: value column {column:?} holds {found}, not a number")]
    NotANumber {
        /// 1-based row number.
        row: usize,
        /// The value column.
        column: String,
        /// What it held.
        found: &'static str,
    },
    /// A label column held a blob.
    #[error("row {row}: label column {column:?} holds a blob, not text")]
    BlobLabel {
        /// 1-based row number.
        row: usize,
        /// The label column.
        column: String,
    },
    /// Two rows have the same label values, which would be one series twice.
    #[error("rows {first} and {second} have the same label values; each row must be one series")]
    DuplicateLabels {
        /// 1-based row number of the first.
        first: usize,
        /// 1-based row number of the second.
        second: usize,
    },
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// One result row: the label values (in `labels` order) and the values (in `values` order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Label values.
    pub labels: Vec<String>,
    /// Values.
    pub values: Vec<f64>,
}

/// The last run of one custom query, with what rendering its rows needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResult {
    /// The query's name (the `query` label of its health series).
    pub query: String,
    /// Whether the last run succeeded.
    pub success: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// How long the last run took.
    pub duration_seconds: f64,
    /// When the last run finished (Unix seconds).
    pub finished_at: f64,
    /// The rows of the last run; empty when it failed.
    #[serde(skip)]
    pub rows: Vec<Row>,
    /// Family of each value column, in `values` order.
    #[serde(skip)]
    pub families: Vec<Family>,
    /// Label names, in `labels` order.
    #[serde(skip)]
    pub labels: Vec<String>,
}

impl QueryResult {
    /// The result of a run of `q` that took `duration` and gave `rows` (or failed).
    pub fn new(
        q: &CustomQuery,
        outcome: &Result<Vec<Row>, QueryError>,
        duration: Duration,
    ) -> Self {
        let help = if q.help.is_empty() {
            format!(
                "Custom query {} (cached from the last background run).",
                q.name
            )
        } else {
            q.help.clone()
        };
        let help = intern(&help);
        let kind = q.kind.as_str();
        QueryResult {
            query: q.name.clone(),
            success: outcome.is_ok(),
            error: outcome.as_ref().err().map(|e| e.to_string()),
            duration_seconds: duration.as_secs_f64(),
            finished_at: crate::unix_now(),
            rows: outcome.as_ref().ok().cloned().unwrap_or_default(),
            families: q
                .families()
                .iter()
                .map(|name| Family {
                    name: intern(name),
                    help,
                    kind,
                })
                .collect(),
            labels: q.labels.clone(),
        }
    }
}

/// Runs `q` on `conn` (read-only), interrupted once `q.timeout` has passed or `cancel` is set.
pub fn run(
    conn: &Connection,
    q: &CustomQuery,
    cancel: &AtomicBool,
) -> Result<Vec<Row>, QueryError> {
    let (result, stop) = interrupt::bounded(conn, Instant::now(), q.timeout.0, cancel, |c, _| {
        read_rows(c, q)
    });
    match stop {
        Some(stop) => Err(QueryError::Interrupted(stop)),
        None => result,
    }
}

fn read_rows(conn: &Connection, q: &CustomQuery) -> Result<Vec<Row>, QueryError> {
    let mut stmt = conn.prepare(&q.sql)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let index = |c: &String| {
        names
            .iter()
            .position(|n| n == c)
            .ok_or_else(|| QueryError::MissingColumn {
                column: c.clone(),
                found: names.join(", "),
            })
    };
    let values: Vec<usize> = q.values.iter().map(index).collect::<Result<_, _>>()?;
    let labels: Vec<usize> = q.labels.iter().map(index).collect::<Result<_, _>>()?;
    let mut rows = stmt.query([])?;
    let mut out: Vec<Row> = Vec::new();
    let mut seen: std::collections::HashMap<Vec<String>, usize> = Default::default();
    while let Some(r) = rows.next()? {
        let n = out.len() + 1;
        let mut row = Row {
            labels: Vec::with_capacity(labels.len()),
            values: Vec::with_capacity(values.len()),
        };
        for (&i, column) in labels.iter().zip(&q.labels) {
            row.labels.push(match r.get_ref(i)? {
                ValueRef::Null => String::new(),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(_) => {
                    return Err(QueryError::BlobLabel {
                        row: n,
                        column: column.clone(),
                    })
                }
            });
        }
        for (&i, column) in values.iter().zip(&q.values) {
            let found = match r.get_ref(i)? {
                ValueRef::Integer(v) => {
                    row.values.push(v as f64);
                    continue;
                }
                ValueRef::Real(v) => {
                    row.values.push(v);
                    continue;
                }
                ValueRef::Null => "NULL",
                ValueRef::Text(_) => "text",
                ValueRef::Blob(_) => "a blob",
            };
            return Err(QueryError::NotANumber {
                row: n,
                column: column.clone(),
                found,
            });
        }
        if let Some(first) = seen.insert(row.labels.clone(), n) {
            return Err(QueryError::DuplicateLabels { first, second: n });
        }
        out.push(row);
    }
    Ok(out)
}

const QUERY: &[&str] = &["database", "query"];

/// `sqlite_custom_query_success`.
pub const SUCCESS: Gauge = Gauge {
    name: "sqlite_custom_query_success",
    help: "1 if the last run of the custom query succeeded; its series are absent while it fails (cached from the last background run).",
    labels: QUERY,
};
/// `sqlite_custom_query_last_run_timestamp_seconds`.
pub const LAST_RUN: Gauge = Gauge {
    name: "sqlite_custom_query_last_run_timestamp_seconds",
    help: "Unix time the last run of the custom query finished, successfully or not.",
    labels: QUERY,
};
/// `sqlite_custom_query_duration_seconds`.
pub const DURATION: Gauge = Gauge {
    name: "sqlite_custom_query_duration_seconds",
    help: "Duration of the last run of the custom query (cached from the last background run).",
    labels: QUERY,
};

/// Writes each query's health series and the rows of those whose last run succeeded.
pub fn series<'a>(
    database: &str,
    results: impl IntoIterator<Item = &'a QueryResult>,
    out: &mut dyn Series,
) {
    for r in results {
        out.set(&SUCCESS, &[database, &r.query], flag(r.success));
        out.set(&LAST_RUN, &[database, &r.query], r.finished_at);
        out.set(&DURATION, &[database, &r.query], r.duration_seconds);
        for row in &r.rows {
            let mut labels: Vec<(&str, &str)> = vec![("database", database)];
            labels.extend(
                r.labels
                    .iter()
                    .zip(&row.labels)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            for (family, v) in r.families.iter().zip(&row.values) {
                out.set_family(*family, &labels, *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HumanDuration, QueryType};

    fn query(sql: &str, values: &[&str], labels: &[&str]) -> CustomQuery {
        CustomQuery {
            name: "orders".into(),
            help: String::new(),
            sql: sql.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            kind: QueryType::Gauge,
            interval: HumanDuration(Duration::from_secs(60)),
            timeout: HumanDuration(Duration::from_secs(5)),
        }
    }

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE orders (status TEXT, amount REAL);
             INSERT INTO orders VALUES ('new', 1.5), ('new', 2), ('paid', 4), (NULL, 1);",
        )
        .unwrap();
        c
    }

    #[test]
    fn rows_become_labelled_values() {
        let q = query(
            "SELECT status, count(*) AS n, sum(amount) AS total FROM orders GROUP BY status ORDER BY status",
            &["n", "total"],
            &["status"],
        );
        let never = AtomicBool::new(false);
        let rows = run(&conn(), &q, &never).unwrap();
        assert_eq!(
            rows,
            [
                Row {
                    labels: vec!["".into()],
                    values: vec![1.0, 1.0]
                },
                Row {
                    labels: vec!["new".into()],
                    values: vec![2.0, 3.5]
                },
                Row {
                    labels: vec!["paid".into()],
                    values: vec![1.0, 4.0]
                },
            ]
        );
        let result = QueryResult::new(&q, &Ok(rows), Duration::from_millis(3));
        let mut out = crate::collect::series::Lines::default();
        series("app", &[result], &mut out);
        assert!(
            out.0
                .contains(&"orders_total{database=\"app\",status=\"new\"} 3.5".to_string()),
            "{:?}",
            out.0
        );
        assert!(
            out.0.contains(&"orders_n{database=\"app\"} 1".to_string()),
            "{:?}",
            out.0
        );
        assert!(out.0.contains(
            &"sqlite_custom_query_success{database=\"app\",query=\"orders\"} 1".to_string()
        ));
    }

    #[test]
    fn bad_rows_fail_the_run() {
        let never = AtomicBool::new(false);
        let c = conn();
        let text = query("SELECT status AS v FROM orders", &["v"], &[]);
        assert!(matches!(
            run(&c, &text, &never),
            Err(QueryError::NotANumber { row: 1, .. })
        ));
        let dup = query(
            "SELECT status, amount FROM orders WHERE status = 'new'",
            &["amount"],
            &["status"],
        );
        assert!(matches!(
            run(&c, &dup, &never),
            Err(QueryError::DuplicateLabels {
                first: 1,
                second: 2
            })
        ));
        let missing = query("SELECT amount FROM orders", &["total"], &[]);
        assert!(matches!(
            run(&c, &missing, &never),
            Err(QueryError::MissingColumn { .. })
        ));
        let mut slow = query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) AS v FROM c",
            &["v"],
            &[],
        );
        slow.timeout = HumanDuration(Duration::from_millis(50));
        let started = Instant::now();
        assert!(matches!(
            run(&c, &slow, &never),
            Err(QueryError::Interrupted(Stop::Timeout(_)))
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
