//! `size`: file size, pages and freelist — all read from the header or a stat, O(1).

use crate::sqlite::sql::pragma;

use super::{CollectError, Collector, Scrape};

/// Collects the file size, page size, page count and freelist count.
pub struct Size;

impl Collector for Size {
    fn name(&self) -> &'static str {
        "size"
    }

    fn update(&self, s: &mut Scrape<'_>) -> Result<(), CollectError> {
        let f = &mut s.facts.size;
        f.database_bytes = Some(std::fs::metadata(s.path)?.len());
        f.page_size_bytes = Some(pragma::<i64>(s.conn, "page_size")? as u64);
        f.pages = Some(pragma::<i64>(s.conn, "page_count")? as u64);
        f.freelist_pages = Some(pragma::<i64>(s.conn, "freelist_count")? as u64);
        Ok(())
    }
}
