//! A fleet of one database, scraped in-process (no HTTP), for the engine tests.

use std::path::Path;

use sqlite_exporter::collect::CollectorSet;
use sqlite_exporter::config::Config;
use sqlite_exporter::fleet::Fleet;

/// A fleet with the default collectors and one scrape thread, watching `db`.
pub fn fleet_of(db: &Path) -> Fleet {
    let fleet = Fleet::new(CollectorSet::defaults(), 1);
    fleet.apply(
        Config::from_files(&[db.to_path_buf()])
            .unwrap()
            .databases()
            .0,
    );
    fleet
}
