//! Small SQL helpers: one-value pragmas, page utilization, and quoting for SQL text that has
//! to name objects chosen by users.
//!
//! Prefer bound parameters and table-valued pragmas (`pragma_table_info(?1)`) wherever SQLite
//! allows them; identifiers in `FROM` cannot be bound, and go through [`quote_identifier`].

use rusqlite::types::FromSql;
use rusqlite::Connection;

/// The one value of `PRAGMA name` (or any one-row, one-column statement).
pub fn pragma<T: FromSql>(conn: &Connection, name: &str) -> rusqlite::Result<T> {
    let sql = if name.contains(' ') {
        name.to_string()
    } else {
        format!("PRAGMA {name}")
    };
    conn.query_row(&sql, [], |r| r.get(0))
}

/// (pages − free pages) / pages: the share of the file holding data; `None` for an empty file.
pub fn utilization(pages: u64, free: u64) -> Option<f64> {
    (pages > 0).then(|| (pages - free.min(pages)) as f64 / pages as f64)
}

/// [`utilization`] of the database behind `conn`, read from its header (O(1)).
pub fn utilization_of(conn: &Connection) -> rusqlite::Result<Option<f64>> {
    let pages: u64 = pragma(conn, "page_count")?;
    let free: u64 = pragma(conn, "freelist_count")?;
    Ok(utilization(pages, free))
}

/// Quotes `name` as an SQL identifier: wrapped in double quotes, inner double quotes doubled.
/// Any string, including one with quotes, spaces or `;`, becomes exactly one identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_the_share_of_used_pages() {
        assert_eq!(utilization(0, 0), None);
        assert_eq!(utilization(100, 25), Some(0.75));
        assert_eq!(
            utilization(10, 20),
            Some(0.0),
            "a freelist larger than the file is clamped"
        );
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        assert_eq!(utilization_of(&conn).unwrap(), Some(1.0));
        assert_eq!(pragma::<String>(&conn, "encoding").unwrap(), "UTF-8");
    }

    #[test]
    fn quotes_hostile_names_as_one_identifier() {
        assert_eq!(quote_identifier("plain"), "\"plain\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let name = "x\"; DROP TABLE y; --";
        conn.execute_batch(&format!("CREATE TABLE {} (a)", quote_identifier(name)))
            .unwrap();
        let found: String = conn
            .query_row("SELECT name FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(found, name);
    }
}
