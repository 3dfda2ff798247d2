//! `schema`: `PRAGMA user_version` and the objects in `sqlite_schema` (O(schema), not O(data)).

use crate::sqlite::sql::pragma;

use super::{CollectError, Collector, SchemaObjects, Scrape};

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
}
