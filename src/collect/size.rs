//! `size`: file size, pages and freelist — all read from the header or a stat, O(1).

use crate::sqlite::sql::pragma;

use super::series::{Gauge, Series};
use super::{CollectError, Collector, Database, Facts, Scrape};

const DB: &[&str] = &["database"];

/// `sqlite_database_size_bytes`.
pub const DATABASE_SIZE: Gauge = Gauge {
    name: "sqlite_database_size_bytes",
    help: "Size of the main database file.",
    labels: DB,
};
/// `sqlite_page_size_bytes`.
pub const PAGE_SIZE: Gauge = Gauge {
    name: "sqlite_page_size_bytes",
    help: "PRAGMA page_size.",
    labels: DB,
};
/// `sqlite_pages`.
pub const PAGES: Gauge = Gauge {
    name: "sqlite_pages",
    help: "PRAGMA page_count.",
    labels: DB,
};
/// `sqlite_freelist_pages`.
pub const FREELIST: Gauge = Gauge {
    name: "sqlite_freelist_pages",
    help: "PRAGMA freelist_count.",
    labels: DB,
};
/// `sqlite_page_utilization_ratio`.
pub const UTILIZATION: Gauge = Gauge {
    name: "sqlite_page_utilization_ratio",
    help: "(pages - freelist pages) / pages.",
    labels: DB,
};

/// Collects the file size, page size, page count and freelist count.
pub struct Size;

impl Collector for Size {
    fn name(&self) -> &'static str {
        "size"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let f = &mut s.facts.size;
        if let Some(files) = s.files {
            let h = &files.header;
            f.database_bytes = Some(files.database_bytes);
            f.page_size_bytes = Some(u64::from(h.page_size));
            f.pages = Some(h.pages);
            f.freelist_pages = Some(u64::from(h.freelist_pages));
            return Ok(());
        }
        let conn = s.conn.get()?;
        f.database_bytes = Some(std::fs::metadata(s.path)?.len());
        f.page_size_bytes = Some(pragma::<i64>(conn, "page_size")? as u64);
        f.pages = Some(pragma::<i64>(conn, "page_count")? as u64);
        f.freelist_pages = Some(pragma::<i64>(conn, "freelist_count")? as u64);
        Ok(())
    }

    fn series(&self, db: &Database<'_>, facts: &Facts, out: &mut dyn Series) {
        let f = &facts.size;
        let n = |x: Option<u64>| x.map(|x| x as f64);
        for (gauge, value) in [
            (&DATABASE_SIZE, n(f.database_bytes)),
            (&PAGE_SIZE, n(f.page_size_bytes)),
            (&PAGES, n(f.pages)),
            (&FREELIST, n(f.freelist_pages)),
            (&UTILIZATION, f.utilization_ratio()),
        ] {
            if let Some(v) = value {
                out.set(gauge, &[db.name], v);
            }
        }
    }
}
