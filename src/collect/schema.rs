//! `schema`: `PRAGMA user_version`, the schema cookie and the objects in `sqlite_schema`
//! (O(schema), not O(data)). Both numbers are words of the page 1 header read anyway.

use crate::config::Detail;
use crate::sqlite::sql::pragma;

use super::series::{Gauge, Series};
use super::{CollectError, Collector, Database, Facts, FileFacts, SchemaObjects, Scrape};

/// `sqlite_user_version`: PRAGMA user_version, the number an application keeps at offset 60
/// of the header for its own schema migrations.
pub const USER_VERSION: Gauge = Gauge {
    name: "sqlite_user_version",
    help: "PRAGMA user_version: the application's own schema number in the database header (SQLite never changes it).",
    labels: &["database"],
};
/// `sqlite_schema_cookie`: PRAGMA schema_version, the cookie at offset 40 of the header (at
/// `metrics.detail: full` only).
pub const SCHEMA_COOKIE: Gauge = Gauge {
    name: "sqlite_schema_cookie",
    help:
        "PRAGMA schema_version: the schema cookie, which SQLite increments at every schema change.",
    labels: &["database"],
};
/// `sqlite_schema_objects{type}`.
pub const OBJECTS: Gauge = Gauge {
    name: "sqlite_schema_objects",
    help: "Objects in sqlite_schema by type.",
    labels: &["database", "type"],
};

/// Collects the user version, the schema cookie and the object counts.
pub struct Schema;

impl Collector for Schema {
    fn name(&self) -> &'static str {
        "schema"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let cookie = match s.files {
            Some(f) => {
                s.facts.schema.user_version = Some(i64::from(f.header.user_version));
                f.header.schema_version
            }
            None => {
                let conn = s.conn.get()?;
                s.facts.schema.user_version = Some(pragma(conn, "user_version")?);
                pragma::<i64>(conn, "schema_version")? as u32
            }
        };
        // The objects change only with the schema cookie: count them again only then.
        let previous = &s.previous.schema;
        let objects = match previous.objects {
            Some(o) if previous.cookie == Some(cookie) => o,
            _ => match s.files.and_then(count_from_page1) {
                Some(o) => o,
                None => count(s.conn.get()?)?,
            },
        };
        s.facts.schema.objects = Some(objects);
        s.facts.schema.cookie = Some(cookie);
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        let f = &facts.schema;
        if let Some(v) = f.user_version {
            out.set(&USER_VERSION, &[db.name], v as f64);
        }
        // At full detail only: by default a database costs at most 40 series.
        if let (Some(c), Detail::Full) = (f.cookie, db.detail) {
            // As `PRAGMA schema_version` prints it: the header word as a signed number.
            out.set(&SCHEMA_COOKIE, &[db.name], f64::from(c as i32));
        }
        if let Some(o) = f.objects {
            for (t, count) in [
                ("table", o.tables),
                ("index", o.indexes),
                ("view", o.views),
                ("trigger", o.triggers),
            ] {
                out.set(&OBJECTS, &[db.name, t], count as f64);
            }
        }
    }
}

/// The objects counted from page 1 itself, when the files were read and the whole schema fits
/// on that page; `None` sends the count to SQLite.
fn count_from_page1(files: &FileFacts) -> Option<SchemaObjects> {
    let page1 = files.page1.as_deref()?;
    match crate::sqlite::schema_page::count_schema_objects(page1) {
        Ok(crate::sqlite::schema_page::SchemaRead::Counted(o)) => Some(SchemaObjects {
            tables: o.tables,
            indexes: o.indexes,
            views: o.views,
            triggers: o.triggers,
        }),
        _ => None,
    }
}

/// `SELECT type, count(*) FROM sqlite_schema GROUP BY type` (O(schema), not O(data)).
fn count(conn: &rusqlite::Connection) -> Result<SchemaObjects, CollectError> {
    let mut objects = SchemaObjects::default();
    let mut stmt = conn.prepare("SELECT type, count(*) FROM sqlite_schema GROUP BY type")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let n = row.get::<_, i64>(1)? as u64;
        match row.get_ref(0)?.as_str().unwrap_or("") {
            "table" => objects.tables = n,
            "index" => objects.indexes = n,
            "view" => objects.views = n,
            "trigger" => objects.triggers = n,
            _ => {}
        }
    }
    Ok(objects)
}
