//! Corrupt SQLite databases for tests, made by editing bytes of one page with `std::fs`, so no
//! binary fixture lives in git: builders that create a database from SQL in the given
//! directory (left in rollback-journal mode, so the edited main file is exactly what SQLite
//! reads), and [`table_root`], which breaks a table of an existing database in place.
//!
//! Include with `#[path = "util/corrupt.rs"] mod corrupt;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// A database where one index entry no longer matches its table row, with the page structure
/// intact: `PRAGMA quick_check` says `ok` (it does not compare indexes with tables) and
/// `PRAGMA integrity_check` reports the row missing from the index.
///
/// Table `t(id, v)` with index `t_v` on `v`; values are `key-00010`, `key-00020`, ... so the
/// edit (`key-00500` → `key-00501` inside the index leaf) keeps the index sorted.
pub fn index_entry_mismatch(dir: &Path) -> PathBuf {
    let path = dir.join("index-entry-mismatch.db");
    let (root, page_size) = build(
        &path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE INDEX t_v ON t(v);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100)
         INSERT INTO t SELECT x, printf('key-%05d', x * 10) FROM c;",
        "t_v",
    );
    edit_page(&path, root, page_size, |page| {
        assert_eq!(page[0], 0x0a, "index root should be a single leaf page");
        let at = find_once(page, b"key-00500");
        page[at + 8] = b'1';
    });
    path
}

/// A database whose table b-tree page is structurally broken: the first entry of the cell
/// pointer array of table `t`'s leaf page points past the end of the page. Both
/// `quick_check` and `integrity_check` report it, and reading `t` fails with
/// `SQLITE_CORRUPT`; `sqlite_schema` (page 1) is intact, so the file still opens.
pub fn table_page_damage(dir: &Path) -> PathBuf {
    let path = dir.join("table-page-damage.db");
    let (root, page_size) = build(
        &path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20)
         INSERT INTO t SELECT x, printf('row-%05d', x) FROM c;",
        "t",
    );
    edit_page(&path, root, page_size, |page| {
        assert_eq!(page[0], 0x0d, "table root should be a single leaf page");
        // Leaf page header is 8 bytes; the cell pointer array follows (big-endian u16s).
        page[8] = 0xff;
        page[9] = 0xf0;
    });
    path
}

/// A database whose schema cannot be parsed: the `CREATE TABLE` text of table `t` in
/// `sqlite_schema` is damaged. The header reads fine (the file opens and `PRAGMA
/// schema_version` answers), but every statement that needs the schema, the integrity checks
/// included, fails with `SQLITE_CORRUPT` ("malformed database schema") instead of reporting
/// rows.
pub fn malformed_schema(dir: &Path) -> PathBuf {
    let path = dir.join("malformed-schema.db");
    let (_, page_size) = build(
        &path,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'one');",
        "t",
    );
    edit_page(&path, 1, page_size, |page| {
        let at = find_once(page, b"CREATE TABLE t(");
        page[at + 7..at + 12].copy_from_slice(b"TABLX");
    });
    path
}

/// Breaks the root page of `table` in an existing database, in place: its page type byte
/// becomes invalid and its cell count 0xffff. Every WAL frame is first moved into the main file
/// (`wal_checkpoint(TRUNCATE)`; a no-op in rollback-journal mode), so the edit is what SQLite
/// reads. Both integrity checks then fail, and reading the table fails with `SQLITE_CORRUPT`.
pub fn table_root(path: &Path, table: &str) {
    let conn = Connection::open(path).expect("open test database");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint test database");
    let (root, page_size) = root_page(&conn, table);
    conn.close().expect("close test database");
    edit_page(path, root, page_size, |page| {
        page[0] = 0x00;
        page[3] = 0xff;
        page[4] = 0xff;
    });
}

/// Creates `path` in rollback-journal mode from `sql`; returns the root page of `object` and
/// the page size.
fn build(path: &Path, sql: &str, object: &str) -> (u64, usize) {
    let conn = Connection::open(path).expect("create test database");
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096;")
        .expect("set journal mode");
    conn.execute_batch(sql).expect("fill test database");
    let found = root_page(&conn, object);
    conn.close().expect("close test database");
    found
}

/// The root page of `object` and the page size.
fn root_page(conn: &Connection, object: &str) -> (u64, usize) {
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
            [object],
            |r| r.get(0),
        )
        .expect("find root page");
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("read page size");
    (
        u64::try_from(root).expect("positive root page"),
        usize::try_from(page_size).expect("positive page size"),
    )
}

/// Reads the file, lets `edit` change page `page_no` (1-based) in place, writes it back.
fn edit_page(path: &Path, page_no: u64, page_size: usize, edit: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(path).expect("read test database");
    let start = (page_no as usize - 1) * page_size;
    edit(&mut bytes[start..start + page_size]);
    std::fs::write(path, bytes).expect("write test database");
}

fn find_once(haystack: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "expected exactly one {needle:?} in the page");
    hits[0]
}
