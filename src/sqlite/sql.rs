//! Small builders for SQL text that has to name objects chosen by users.
//!
//! Prefer bound parameters and table-valued pragmas (`pragma_table_info(?1)`) wherever SQLite
//! allows them; identifiers in `FROM` cannot be bound, and go through [`quote_identifier`].

/// Quotes `name` as an SQL identifier: wrapped in double quotes, inner double quotes doubled.
/// Any string, including one with quotes, spaces or `;`, becomes exactly one identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

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
