//! The scrape engine on real files: an unchanged database costs no read and no SQLite call, a
//! changed one shows its new values at the next scrape, a file replaced under the same path is
//! followed, and the values read from the files equal what SQLite itself reports.
//!
//! One test function: it counts this process's SQLite connections, which other tests running in
//! parallel in the same binary would disturb.

#[path = "util/fleet.rs"]
mod fleet;
#[path = "util/sqlite3.rs"]
mod sqlite3;

use std::path::Path;

use fleet::fleet_of;

use rusqlite::Connection;
use sqlite_exporter::fleet::monitor::DatabaseReport;
use sqlite_exporter::fleet::Fleet;
use sqlite_exporter::sqlite::connection;

fn scrape(fleet: &Fleet) -> DatabaseReport {
    std::sync::Arc::unwrap_or_clone(fleet.collect_blocking().databases.remove(0))
}

/// Waits until the files' last change is older than the racily-clean window, so the next
/// scrape may trust its stamp.
fn settle() {
    std::thread::sleep(
        sqlite_exporter::fleet::files::GRANULARITY + std::time::Duration::from_millis(100),
    );
}

fn assert_equals_sqlite(db: &Path, r: &DatabaseReport) {
    let q = |sql: &str| -> u64 { sqlite3::query_readonly(db, sql).parse().unwrap() };
    let f = &r.facts;
    assert!(r.up, "{:?}", r.error);
    assert_eq!(f.size.pages, Some(q("PRAGMA page_count")), "page_count");
    assert_eq!(
        f.size.freelist_pages,
        Some(q("PRAGMA freelist_count")),
        "freelist_count"
    );
    assert_eq!(
        f.size.page_size_bytes,
        Some(q("PRAGMA page_size")),
        "page_size"
    );
    assert_eq!(
        f.schema.user_version,
        Some(q("PRAGMA user_version") as i64),
        "user_version"
    );
    let objects = f.schema.objects.expect("schema objects");
    assert_eq!(
        objects.tables,
        q("SELECT count(*) FROM sqlite_schema WHERE type = 'table'"),
        "tables"
    );
    assert_eq!(
        objects.indexes,
        q("SELECT count(*) FROM sqlite_schema WHERE type = 'index'"),
        "indexes"
    );
}

#[test]
fn unchanged_costs_nothing_changed_is_read_and_replaced_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    // An application keeps its connection open and writes in WAL mode.
    let app = Connection::open(&db).unwrap();
    app.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); CREATE INDEX t_v ON t(v);
         INSERT INTO t(v) SELECT randomblob(500) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3);",
    )
    .unwrap();
    let fleet = fleet_of(&db);
    let first = scrape(&fleet);
    assert_equals_sqlite(&db, &first);
    let monitor = fleet.monitor("app").unwrap();

    // Unchanged: no read of the files, no SQLite connection, the same facts.
    settle();
    let _ = scrape(&fleet);
    let (reads, opened) = (monitor.reads(), connection::opened());
    for _ in 0..20 {
        let again = scrape(&fleet);
        assert_eq!(again.facts.size, first.facts.size);
        assert_eq!(again.facts.schema, first.facts.schema);
    }
    assert_eq!(
        monitor.reads(),
        reads,
        "an unchanged database was read again"
    );
    assert_eq!(
        connection::opened(),
        opened,
        "an unchanged database cost a SQLite connection"
    );

    // Written between scrapes: the next scrape shows the new values, from the files alone.
    app.execute_batch("INSERT INTO t(v) SELECT randomblob(3000) FROM t; PRAGMA user_version = 7;")
        .unwrap();
    let opened = connection::opened();
    let changed = scrape(&fleet);
    assert_eq!(changed.facts.schema.user_version, Some(7));
    assert_equals_sqlite(&db, &changed);
    assert!(monitor.reads() > reads, "a changed database was not read");
    // Written again at once, within the timestamp granularity: still seen.
    app.execute_batch("PRAGMA user_version = 8;").unwrap();
    assert_eq!(scrape(&fleet).facts.schema.user_version, Some(8));
    // A schema change is seen too.
    app.execute_batch("CREATE TABLE u(x); CREATE INDEX u_x ON u(x);")
        .unwrap();
    assert_equals_sqlite(&db, &scrape(&fleet));
    assert_eq!(
        connection::opened(),
        opened,
        "the files answered: no SQLite connection was needed"
    );

    // Replaced under the same path (a restore by another tool, a rename over it).
    drop(app);
    let other = dir.path().join("other.db");
    {
        let c = Connection::open(&other).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=DELETE; PRAGMA user_version = 42; CREATE TABLE a(x); CREATE TABLE b(x);",
        )
        .unwrap();
    }
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", db.display()));
    }
    std::fs::rename(&other, &db).unwrap();
    let replaced = scrape(&fleet);
    assert_eq!(
        replaced.facts.schema.user_version,
        Some(42),
        "the new file was not followed"
    );
    assert_equals_sqlite(&db, &replaced);
    assert_eq!(replaced.facts.info.as_ref().unwrap().journal_mode, "delete");
}
