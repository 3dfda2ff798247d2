//! `schema`: `PRAGMA user_version` and the objects in `sqlite_schema` (O(schema), not O(data)).

use crate::sqlite::sql::pragma;

use super::series::{Gauge, Series};
use super::{CollectError, Collector, Database, Facts, SchemaObjects, Scrape};

/// `sqlite_schema_version`: PRAGMA user_version.
pub const USER_VERSION: Gauge = Gauge {
    name: "sqlite_schema_version",
    help: "PRAGMA user_version.",
    labels: &["database"],
};
/// `sqlite_schema_objects{type}`.
pub const OBJECTS: Gauge = Gauge {
    name: "sqlite_schema_objects",
    help: "Objects in sqlite_schema by type.",
    labels: &["database", "type"],
};

/// Collects the schema version and object counts.
pub struct Schema;

impl Collector for Schema {
    fn name(&self) -> &'static str {
        "schema"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        s.facts.schema.user_version = Some(pragma(s.conn, "user_version")?);
        let mut objects = SchemaObjects::default();
        let mut stmt = s
            .conn
            .prepare("SELECT type, count(*) FROM sqlite_schema GROUP BY type")?;
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
        s.facts.schema.objects = Some(objects);
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        let f = &facts.schema;
        if let Some(v) = f.user_version {
            out.set(&USER_VERSION, &[db.name], v as f64);
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
