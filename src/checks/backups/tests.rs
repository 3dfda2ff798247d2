//! Tests of the parent module, on real SQLite files in temp dirs.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::backup_dir::{list, write_sidecar, BackupMeta};

static NEVER: AtomicBool = AtomicBool::new(false);
const TIMEOUT: Duration = Duration::from_secs(10);

/// A database of a few pages at `path`.
fn database(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=DELETE;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 300)
         INSERT INTO t(v) SELECT printf('row-%06d', i) FROM c;",
    )
    .unwrap();
}

/// A backup named `file` in `dir` with a sidecar as the exporter writes it.
fn with_sidecar(dir: &Path, file: &str) -> PathBuf {
    let p = dir.join(file);
    database(&p);
    let meta = BackupMeta {
        database: "app".into(),
        created_at: "2024-03-05T07:08:09.000Z".into(),
        created_at_unix: 1_709_622_489.0,
        label: None,
        size: p.metadata().unwrap().len(),
        page_size: Some(4096),
        page_count: None,
        schema_version: Some(0),
        sqlite_version: None,
        sha256: Some(sha256_file(&p).unwrap()),
        verification: Some("ok".into()),
        duration_seconds: None,
        compressed: false,
        table_rows: None,
    };
    write_sidecar(dir, file, &meta).unwrap();
    p
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn gzip_to(src: &Path, dst: &Path) {
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::fast(),
    );
    e.write_all(&std::fs::read(src).unwrap()).unwrap();
    e.finish().unwrap();
}

/// Each backup of `dir` with its verdict, by file name.
fn verdicts(dir: &Path) -> Vec<(String, BackupState, String)> {
    let list = list("app", dir).unwrap();
    let mut v: Vec<_> = Verdicts::default()
        .judge(&list, TIMEOUT, &NEVER)
        .into_iter()
        .zip(&list)
        .map(|(v, b)| (b.file_name.clone(), v.state, v.detail.unwrap_or_default()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn good_backups_verify_and_every_kind_of_damage_is_caught() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    with_sidecar(dir, "app-2024-01-01_00-00-00.db");
    // The sha256 no longer matches.
    let p = with_sidecar(dir, "app-2024-01-02_00-00-00.db");
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    // A garbage sidecar.
    let p = with_sidecar(dir, "app-2024-01-03_00-00-00.db");
    std::fs::write(format!("{}{META_SUFFIX}", p.display()), "{not json").unwrap();
    // Found files without a sidecar: a good one, a truncated one, an empty one, a good and a
    // truncated gzip.
    database(&dir.join("app-2024-01-04_00-00-00-found.db"));
    let p = dir.join("app-2030-01-01_00-00-00-foreign.db");
    database(&p);
    truncate(&p, 4096 * 2);
    std::fs::write(dir.join("app-2024-01-05_00-00-00-empty.db"), b"").unwrap();
    let plain = dir.join("plain.db");
    database(&plain);
    gzip_to(&plain, &dir.join("app-2024-01-06_00-00-00.db.gz"));
    let gz = dir.join("app-2024-01-07_00-00-00.db.gz");
    gzip_to(&plain, &gz);
    truncate(&gz, gz.metadata().unwrap().len() / 2);

    let got = verdicts(dir);
    let state = |name: &str| {
        got.iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not listed: {got:?}"))
            .clone()
    };
    use BackupState::{Damaged, Verified};
    assert_eq!(state("app-2024-01-01_00-00-00.db").1, Verified, "{got:?}");
    let (_, s, why) = state("app-2024-01-02_00-00-00.db");
    assert_eq!(s, Damaged);
    assert!(why.contains("does not match the sidecar"), "{why}");
    let (_, s, why) = state("app-2024-01-03_00-00-00.db");
    assert_eq!(s, Damaged);
    assert!(why.starts_with("sidecar unreadable"), "{why}");
    assert_eq!(
        state("app-2024-01-04_00-00-00-found.db").1,
        Verified,
        "{got:?}"
    );
    let (_, s, why) = state("app-2030-01-01_00-00-00-foreign.db");
    assert_eq!(s, Damaged);
    assert!(why.starts_with("truncated"), "{why}");
    let (_, s, why) = state("app-2024-01-05_00-00-00-empty.db");
    assert_eq!(s, Damaged);
    assert!(why.starts_with("not a SQLite database"), "{why}");
    assert_eq!(
        state("app-2024-01-06_00-00-00.db.gz").1,
        Verified,
        "{got:?}"
    );
    let (_, s, why) = state("app-2024-01-07_00-00-00.db.gz");
    assert_eq!(s, Damaged);
    assert!(why.contains("corrupt gzip data"), "{why}");
    assert_eq!(got.len(), 8, "{got:?}");
}

#[test]
fn a_found_file_whose_pages_are_damaged_fails_quick_check() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("app-2024-01-01_00-00-00.db");
    database(&p);
    // Overwrite page 2 (the table's root) with junk, keeping the header and the length.
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[4096..8192].fill(0xa5);
    std::fs::write(&p, bytes).unwrap();
    let (_, s, why) = verdicts(d.path()).remove(0);
    assert_eq!(s, BackupState::Damaged);
    assert!(why.starts_with("quick_check"), "{why}");
}

#[test]
fn verdicts_are_cached_until_the_file_or_its_sidecar_changes() {
    let d = tempfile::tempdir().unwrap();
    let p = with_sidecar(d.path(), "app-2024-01-01_00-00-00.db");
    let mut cache = Verdicts::default();
    let judge = |cache: &mut Verdicts| {
        let list = list("app", d.path()).unwrap();
        cache.judge(&list, TIMEOUT, &NEVER)[0].state
    };
    assert_eq!(judge(&mut cache), BackupState::Verified);
    // Same size and mtime: not hashed again, so the change goes unseen.
    let mtime = p.metadata().unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[5000] ^= 0xff;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(
        judge(&mut cache),
        BackupState::Verified,
        "served from the cache"
    );
    let info = &list("app", d.path()).unwrap()[0];
    assert_eq!(cache.cached(info).unwrap().state, BackupState::Verified);
    // A new mtime: examined again.
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime + Duration::from_secs(1))
        .unwrap();
    assert_eq!(cache.cached(info), None, "stale");
    assert_eq!(judge(&mut cache), BackupState::Damaged);
}

#[test]
fn a_name_in_the_future_gives_no_time_later_than_the_file() {
    let d = tempfile::tempdir().unwrap();
    database(&d.path().join("app-2030-01-01_00-00-00-foreign.db"));
    let info = &list("app", d.path()).unwrap()[0];
    assert!(
        info.taken_at_unix <= crate::unix_now(),
        "{}",
        info.taken_at_unix
    );
    let mtime = info.path.metadata().unwrap().modified().unwrap();
    let mtime = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(info.taken_at_unix, mtime);
}
