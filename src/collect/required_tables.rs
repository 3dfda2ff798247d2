//! `required_tables`: whether each table of `schema.required_tables` exists, the check
//! operators otherwise script by hand ("the critical tables are there").
//!
//! The tables change only with the schema cookie, which a scrape reads anyway (page 1's
//! header, or `PRAGMA schema_version`): the names in `sqlite_schema` are read again only when
//! the cookie moved (or the list of required tables did), from page 1 itself when the scrape
//! read it and the whole schema is on it (`sqlite::schema_page::table_names`), else through
//! the scrape's read-only connection. A database without `schema.required_tables` costs nothing and has no series;
//! at `metrics.detail: basic` only the missing tables have one (1), at `full` every required
//! table (0 or 1).

use serde::Serialize;

use crate::config::Detail;
use crate::sqlite::sql::pragma;

use super::series::{flag, Gauge, Series};
use super::{CollectError, Collector, Database, Facts, Scrape};

/// `sqlite_schema_required_table_missing{table}`.
pub const MISSING: Gauge = Gauge {
    name: "sqlite_schema_required_table_missing",
    help: "1 while the table, listed in schema.required_tables, does not exist in the database; else 0 (shown at metrics.detail full only).",
    labels: &["database", "table"],
};

/// What the schema says of the required tables.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RequiredTables {
    /// The tables that must exist (`schema.required_tables`).
    pub required: Vec<String>,
    /// Those of them that do not.
    pub missing: Vec<String>,
    /// The schema cookie they were looked up at.
    #[serde(skip)]
    pub cookie: u32,
}

/// Looks the required tables up in `sqlite_schema`.
pub struct Required;

impl Collector for Required {
    fn name(&self) -> &'static str {
        "required_tables"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let required = &s.settings.schema.required_tables;
        if required.is_empty() {
            return Ok(());
        }
        let cookie = match s.files {
            Some(f) => f.header.schema_version,
            None => pragma::<i64>(s.conn.get()?, "schema_version")? as u32,
        };
        if let Some(previous) = s
            .previous
            .required_tables
            .as_ref()
            .filter(|p| p.cookie == cookie && p.required == *required)
        {
            s.facts.required_tables = Some(previous.clone());
            return Ok(());
        }
        let from_page1 = s
            .files
            .and_then(|f| f.page1.as_deref())
            .and_then(|page| crate::sqlite::schema_page::table_names(page).ok().flatten());
        let tables = match from_page1 {
            Some(names) => names,
            None => {
                let conn = s.conn.get()?;
                let mut stmt =
                    conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
                let names = stmt.query_map([], |r| r.get(0))?;
                names.collect::<Result<_, _>>()?
            }
        };
        // SQLite's table names are case-insensitive.
        let missing = required
            .iter()
            .filter(|t| !tables.iter().any(|n| n.eq_ignore_ascii_case(t)))
            .cloned()
            .collect();
        s.facts.required_tables = Some(RequiredTables {
            required: required.clone(),
            missing,
            cookie,
        });
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        let Some(r) = &facts.required_tables else {
            return;
        };
        // At basic detail only the missing ones (as with recommendations): a database's
        // default budget is 40 series.
        for table in &r.required {
            let missing = r.missing.contains(table);
            if missing || db.detail == Detail::Full {
                out.set(&MISSING, &[db.name, table], flag(missing));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::series::Lines;

    #[test]
    fn names_come_from_page_1_when_the_scrape_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("PRAGMA journal_mode=DELETE; CREATE TABLE users(id);")
            .unwrap();
        let file = std::fs::File::open(&db).unwrap();
        let (header, _) = crate::sqlite::header::read_facts(
            || crate::sqlite::header::MainFile::read(&file),
            None,
            None,
        )
        .unwrap();
        let page1 = std::fs::read(&db).unwrap()[..header.page_size as usize].to_vec();
        let files = crate::collect::FileFacts {
            database_bytes: 0,
            wal_bytes: 0,
            shm_bytes: 0,
            header,
            page1: Some(page1),
        };
        let mut settings = crate::config::Settings::default();
        settings.schema.required_tables = vec!["users".into(), "orders".into()];
        // A connection that cannot open: the answer must come from page 1.
        let nowhere = dir.path().join("nowhere/app.db");
        let conn = crate::collect::LazyConnection::new(&nowhere, std::time::Duration::from_secs(1));
        let previous = Facts::default();
        let mut facts = Facts::default();
        let mut scrape = Scrape {
            path: &db,
            settings: &settings,
            files: Some(&files),
            conn: &conn,
            previous: &previous,
            facts: &mut facts,
        };
        Required.update(&mut scrape).unwrap();
        assert_eq!(
            facts.required_tables.unwrap().missing,
            vec!["orders".to_string()]
        );
    }

    #[test]
    fn missing_tables_are_found_and_looked_up_again_only_when_the_cookie_moves() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer.execute_batch("CREATE TABLE Users(id);").unwrap();
        let mut settings = crate::config::Settings::default();
        settings.schema.required_tables = vec!["users".into(), "orders".into()];
        let read = |previous: &Facts| {
            let conn = crate::collect::LazyConnection::new(&db, std::time::Duration::from_secs(1));
            let mut facts = Facts::default();
            let mut scrape = Scrape {
                path: &db,
                settings: &settings,
                files: None,
                conn: &conn,
                previous,
                facts: &mut facts,
            };
            Required.update(&mut scrape).unwrap();
            facts
        };
        let first = read(&Facts::default());
        let r = first.required_tables.clone().unwrap();
        assert_eq!(
            r.missing,
            vec!["orders".to_string()],
            "names are case-insensitive"
        );

        // Same cookie: the previous answer stands, even if it were stale.
        let mut stale = first.clone();
        stale.required_tables.as_mut().unwrap().missing.clear();
        assert!(read(&stale).required_tables.unwrap().missing.is_empty());

        writer.execute_batch("CREATE TABLE orders(id);").unwrap();
        let after = read(&first);
        assert!(after.required_tables.as_ref().unwrap().missing.is_empty());
        writer.execute_batch("DROP TABLE Users;").unwrap();
        let dropped = read(&after);
        assert_eq!(
            dropped.required_tables.as_ref().unwrap().missing,
            vec!["users".to_string()]
        );

        let path = db.clone();
        let series = |detail| {
            let mut out = Lines::default();
            let database = Database {
                name: "app",
                path: &path,
                detail,
            };
            Required.series(&database, &dropped, &mut out);
            out.0
        };
        assert_eq!(
            series(Detail::Full),
            vec![
                r#"sqlite_schema_required_table_missing{database="app",table="users"} 1"#,
                r#"sqlite_schema_required_table_missing{database="app",table="orders"} 0"#,
            ]
        );
        assert_eq!(
            series(Detail::Basic),
            vec![r#"sqlite_schema_required_table_missing{database="app",table="users"} 1"#]
        );
    }
}
