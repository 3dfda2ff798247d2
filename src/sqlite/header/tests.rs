//! Tests of the parent module.

use super::*;
use proptest::prelude::*;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;

// ---- helpers -------------------------------------------------------------------------

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// A valid header with every field set to a distinct value.
fn synthetic_header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..16].copy_from_slice(MAGIC);
    h[16..18].copy_from_slice(&4096u16.to_be_bytes());
    h[18] = 2;
    h[19] = 2;
    h[20] = 8;
    h[21..24].copy_from_slice(&[64, 32, 32]);
    let words: [(usize, u32); 14] = [
        (24, 77),
        (28, 123),
        (32, 9),
        (36, 5),
        (40, 42),
        (44, 4),
        (48, 0),
        (52, 3),
        (56, 2),
        (60, (-7i32) as u32),
        (64, 1),
        (68, 0x1234_5678),
        (92, 77),
        (96, 3_050_002),
    ];
    for (off, v) in words {
        h[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }
    h
}

/// SQLite's recovery (`walIndexRecover`), checksums included, over a whole WAL file:
/// (mxFrame, db size, newest committed page-1 frame and its first 100 bytes).
type Recovered = (u64, Option<u32>, Option<(u64, [u8; HEADER_LEN])>);
fn recover(wal: &[u8]) -> Recovered {
    let none = (0, None, None);
    if wal.len() <= 32 {
        return none;
    }
    let mut h = [0u8; 32];
    h.copy_from_slice(&wal[..32]);
    let Ok(Some(page_size)) = check_wal_header(&h) else {
        return none;
    };
    let big = be32(&h, 0) & 1 == 1;
    let mut ck = (be32(&h, 24), be32(&h, 28));
    let frame_len = 24 + page_size as usize;
    let (mut mx, mut db, mut p1, mut pending) = (0u64, None, None, None);
    let mut k = 0usize;
    while 32 + (k + 1) * frame_len <= wal.len() {
        let f = &wal[32 + k * frame_len..32 + (k + 1) * frame_len];
        if f[8..16] != h[16..24] || be32(f, 0) == 0 {
            break;
        }
        ck = wal_checksum(big, &f[..8], ck);
        ck = wal_checksum(big, &f[24..], ck);
        if ck != (be32(f, 16), be32(f, 20)) {
            break;
        }
        k += 1;
        if be32(f, 0) == 1 {
            let mut b = [0u8; HEADER_LEN];
            b.copy_from_slice(&f[24..124]);
            pending = Some((k as u64, b));
        }
        if be32(f, 4) != 0 {
            mx = k as u64;
            db = Some(be32(f, 4));
            if pending.is_some() {
                p1 = pending;
            }
        }
    }
    (mx, db, p1)
}

fn checkpoint_log(conn: &Connection) -> i64 {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .unwrap()
}

fn wal_db(dir: &Path, extra: &str) -> (PathBuf, Connection) {
    let db = dir.join("w.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=OFF; {extra}"
    ))
    .unwrap();
    (db, conn)
}

fn facts_of(db: &Path, previous: Option<&WalCursor>) -> io::Result<(Facts, WalCursor)> {
    let main = File::open(db)?;
    read_facts(|| MainFile::read(&main), Some(&wal_path(db)), previous)
}

/// Facts with the cost fields cleared, for comparing two reads.
fn content(f: &Facts) -> Facts {
    let mut f = f.clone();
    f.wal.frame_reads = 0;
    f.wal.resumed = false;
    f
}

// ---- header ----------------------------------------------------------------------------

#[test]
fn every_header_field_is_decoded() {
    let h = parse_header(&synthetic_header()).unwrap();
    assert_eq!(h.page_size, 4096);
    assert_eq!((h.write_version, h.read_version), (2, 2));
    assert!(h.is_wal());
    assert_eq!(h.reserved_bytes, 8);
    assert_eq!(h.usable_size(), 4088);
    assert_eq!(h.change_counter, 77);
    assert_eq!(h.database_size, 123);
    assert_eq!(h.first_freelist_trunk, 9);
    assert_eq!(h.freelist_pages, 5);
    assert_eq!(h.schema_cookie, 42);
    assert_eq!(h.schema_format, 4);
    assert_eq!(h.largest_root_page, 3);
    assert_eq!(h.text_encoding_code, 2);
    assert_eq!(h.text_encoding(), TextEncoding::Utf16le);
    assert_eq!(h.user_version, -7);
    assert_eq!(h.incremental_vacuum, 1);
    assert_eq!(h.auto_vacuum(), AutoVacuum::Incremental);
    assert_eq!(h.application_id, 0x1234_5678);
    assert_eq!(h.version_valid_for, 77);
    assert_eq!(h.sqlite_version_number, 3_050_002);
    assert!(h.size_is_valid());
    let mut b = synthetic_header();
    b[92..96].copy_from_slice(&76u32.to_be_bytes());
    assert!(
        !parse_header(&b).unwrap().size_is_valid(),
        "stale valid-for"
    );
    b[92..96].copy_from_slice(&77u32.to_be_bytes());
    b[28..32].copy_from_slice(&0u32.to_be_bytes());
    assert!(!parse_header(&b).unwrap().size_is_valid(), "zero size");
}

#[test]
fn page_size_rules() {
    for shift in 9..=16u32 {
        let size = 1u32 << shift;
        let mut b = synthetic_header();
        let raw = if size == 65536 { 1u16 } else { size as u16 };
        b[16..18].copy_from_slice(&raw.to_be_bytes());
        b[20] = 0;
        assert_eq!(parse_header(&b).unwrap().page_size, size);
    }
    for raw in [0u16, 2, 256, 257, 768, 1000, 4097, 65535] {
        let mut b = synthetic_header();
        b[16..18].copy_from_slice(&raw.to_be_bytes());
        assert_eq!(
            parse_header(&b),
            Err(HeaderError::BadPageSize(raw)),
            "{raw}"
        );
    }
    let mut b = synthetic_header();
    b[16..18].copy_from_slice(&512u16.to_be_bytes());
    b[20] = 32;
    assert_eq!(parse_header(&b).unwrap().usable_size(), 480);
    b[20] = 33;
    assert_eq!(
        parse_header(&b),
        Err(HeaderError::UsableSizeTooSmall {
            page_size: 512,
            reserved: 33
        })
    );
}

#[test]
fn magic_versions_and_fractions() {
    let mut b = synthetic_header();
    b[0] = b's';
    assert_eq!(parse_header(&b), Err(HeaderError::BadMagic));
    let mut b = synthetic_header();
    b[15] = b' ';
    assert_eq!(parse_header(&b), Err(HeaderError::BadMagic));
    let mut b = synthetic_header();
    b[19] = 3;
    assert_eq!(
        parse_header(&b),
        Err(HeaderError::UnsupportedReadVersion(3))
    );
    let mut b = synthetic_header();
    b[18] = 3; // write version above 2: read-only to SQLite, still readable
    b[19] = 1;
    let h = parse_header(&b).unwrap();
    assert_eq!((h.write_version, h.read_version, h.is_wal()), (3, 1, false));
    let mut b = synthetic_header();
    b[22] = 33;
    assert_eq!(
        parse_header(&b),
        Err(HeaderError::BadPayloadFractions([64, 33, 32]))
    );
    assert_eq!(
        parse_header_prefix(&b[..99]),
        Err(HeaderError::TooShort { len: 99 })
    );
    assert_eq!(
        parse_header_prefix(b"SQLite"),
        Err(HeaderError::TooShort { len: 6 })
    );
    assert_eq!(
        parse_header_prefix(b"not a database\n"),
        Err(HeaderError::BadMagic)
    );
    assert_eq!(
        header_error(&HeaderError::BadMagic.into()),
        Some(HeaderError::BadMagic)
    );
}

#[test]
fn encoding_and_auto_vacuum_rules() {
    let enc = |code: u32| {
        let mut b = synthetic_header();
        b[56..60].copy_from_slice(&code.to_be_bytes());
        parse_header(&b).unwrap().text_encoding().pragma_name()
    };
    assert_eq!(enc(0), "UTF-8", "never set: the connection default");
    assert_eq!(enc(1), "UTF-8");
    assert_eq!(enc(2), "UTF-16le");
    assert_eq!(enc(3), "UTF-16be");
    assert_eq!(enc(7), "UTF-16be", "SQLite keeps the low two bits");
    let av = |root: u32, incr: u32| {
        let mut b = synthetic_header();
        b[52..56].copy_from_slice(&root.to_be_bytes());
        b[64..68].copy_from_slice(&incr.to_be_bytes());
        parse_header(&b).unwrap().auto_vacuum()
    };
    assert_eq!(av(0, 0), AutoVacuum::None);
    assert_eq!(
        av(0, 1),
        AutoVacuum::None,
        "incremental flag without auto-vacuum"
    );
    assert_eq!(av(4, 0), AutoVacuum::Full);
    assert_eq!(av(4, 1), AutoVacuum::Incremental);
    assert_eq!(AutoVacuum::Incremental.pragma_value(), 2);
}

#[test]
fn headers_of_real_databases_match_their_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (page_size, enc, av)) in [
        (512, "UTF-8", "NONE"),
        (1024, "UTF-16le", "FULL"),
        (65536, "UTF-16be", "INCREMENTAL"),
    ]
    .into_iter()
    .enumerate()
    {
        let db = dir.path().join(format!("h{i}.db"));
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size={page_size}; PRAGMA encoding='{enc}'; PRAGMA auto_vacuum={av};
             CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(3000));
             PRAGMA user_version=-{i}; PRAGMA application_id=99;"
        ))
        .unwrap();
        let main = MainFile::read(&File::open(&db).unwrap()).unwrap();
        let h = parse_header(&main.header).unwrap();
        let (f, _) = current_facts(&main.header, main.len, None, None).unwrap();
        let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(i64::from(h.page_size), q("PRAGMA page_size"));
        assert_eq!(f.pages as i64, q("PRAGMA page_count"));
        assert_eq!(i64::from(h.user_version), q("PRAGMA user_version"));
        assert_eq!(i64::from(h.application_id), q("PRAGMA application_id"));
        assert_eq!(i64::from(h.schema_cookie), q("PRAGMA schema_version"));
        assert_eq!(f.auto_vacuum.pragma_value(), q("PRAGMA auto_vacuum"));
        let e: String = conn.query_row("PRAGMA encoding", [], |r| r.get(0)).unwrap();
        assert_eq!(f.encoding.pragma_name(), e);
        assert_eq!(h.read_version, 1, "rollback journal");
        assert_eq!(f.page1_source, Page1Source::MainFile);
    }
}

// ---- WAL edge cases ------------------------------------------------------------------

#[test]
fn missing_junk_and_header_only_wals_have_no_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (s, c) = read_wal(&dir.path().join("none-wal"), None).unwrap();
    assert_eq!((s, c), (WalSummary::default(), WalCursor::default()));
    let junk = dir.path().join("junk-wal");
    std::fs::write(&junk, b"junk").unwrap();
    assert_eq!(read_wal(&junk, None).unwrap().0.frames, 0);
    std::fs::write(&junk, [0u8; 5000]).unwrap();
    assert_eq!(read_wal(&junk, None).unwrap().0.frames, 0);

    // A real WAL, cut to its header; then with a broken header checksum or version.
    let (db, conn) = wal_db(dir.path(), "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    let bytes = std::fs::read(wal_path(&db)).unwrap();
    drop(conn);
    let copy = dir.path().join("copy-wal");
    std::fs::write(&copy, &bytes[..32]).unwrap();
    let (s, _) = read_wal(&copy, None).unwrap();
    assert_eq!((s.frames, s.page_size), (0, Some(4096)));
    let mut bad = bytes.clone();
    bad[27] ^= 1;
    std::fs::write(&copy, &bad).unwrap();
    let (s, _) = read_wal(&copy, None).unwrap();
    assert_eq!(
        (s.frames, s.page_size),
        (0, None),
        "bad checksum: an empty log"
    );
    let mut future = bytes[..32].to_vec();
    future[4..8].copy_from_slice(&3_007_001u32.to_be_bytes());
    let ck = wal_checksum(be32(&future, 0) & 1 == 1, &future[..24], (0, 0));
    future[24..28].copy_from_slice(&ck.0.to_be_bytes());
    future[28..32].copy_from_slice(&ck.1.to_be_bytes());
    std::fs::write(&copy, &future).unwrap();
    let e = read_wal(&copy, None).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    std::fs::write(&copy, &bytes).unwrap();
    let (s, _) = read_wal(&copy, None).unwrap();
    assert!(s.frames > 0);
    assert_eq!(s.frames, recover(&bytes).0);
}

#[test]
fn frames_match_the_checkpoint_report_and_an_emptied_wal_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = wal_db(
        dir.path(),
        "CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);",
    );
    let (f, _) = facts_of(&db, None).unwrap();
    assert!(f.wal_frames > 0);
    assert!(matches!(f.page1_source, Page1Source::WalFrame(_)));
    assert_eq!(f.wal_frames as i64, checkpoint_log(&conn));
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    assert_eq!(std::fs::metadata(wal_path(&db)).unwrap().len(), 0);
    let (f, c) = facts_of(&db, None).unwrap();
    assert_eq!((f.wal_frames, f.page1_source), (0, Page1Source::MainFile));
    assert_eq!(c, WalCursor::default());
    let pc: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(f.pages as i64, pc);
}

#[test]
fn a_restarted_wal_counts_only_its_new_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = wal_db(
        dir.path(),
        "CREATE TABLE t(x);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200)
         INSERT INTO t SELECT randomblob(3000) FROM c;",
    );
    let (before, cursor) = facts_of(&db, None).unwrap();
    assert!(before.wal_frames > 100);
    conn.execute_batch("PRAGMA wal_checkpoint(RESTART); PRAGMA user_version=5;")
        .unwrap();
    let size = std::fs::metadata(wal_path(&db)).unwrap().len();
    assert!(size > 100 * 4096, "the file keeps its old size");
    let (fresh, _) = facts_of(&db, None).unwrap();
    let (carried, _) = facts_of(&db, Some(&cursor)).unwrap();
    assert!(!carried.wal.resumed, "new salts invalidate the cursor");
    assert_eq!(content(&fresh), content(&carried));
    assert_eq!(fresh.user_version, 5);
    assert!(fresh.wal_frames < 10);
    let bytes = std::fs::read(wal_path(&db)).unwrap();
    assert_eq!(fresh.wal_frames, recover(&bytes).0);
    assert_eq!(fresh.wal_frames as i64, checkpoint_log(&conn));
}

#[test]
fn frames_of_a_rolled_back_transaction_are_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = wal_db(
        dir.path(),
        "PRAGMA cache_size=10; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    );
    let (committed, cursor) = facts_of(&db, None).unwrap();
    // A transaction too big for the cache spills frames into the WAL, then rolls back.
    conn.execute_batch(
        "BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 500)
         INSERT INTO t SELECT randomblob(4000) FROM c; ROLLBACK;",
    )
    .unwrap();
    let wal = std::fs::read(wal_path(&db)).unwrap();
    assert!(wal.len() > 100 * 4096, "the transaction spilled");
    let (fresh, _) = facts_of(&db, None).unwrap();
    let (carried, cursor) = facts_of(&db, Some(&cursor)).unwrap();
    assert!(carried.wal.resumed);
    assert_eq!(content(&fresh), content(&committed));
    assert_eq!(content(&carried), content(&committed));
    assert_eq!(fresh.wal_frames, recover(&wal).0);
    // A later commit overwrites the start of the spilled frames.
    conn.execute_batch("INSERT INTO t VALUES (2)").unwrap();
    let (fresh, _) = facts_of(&db, None).unwrap();
    let (carried, _) = facts_of(&db, Some(&cursor)).unwrap();
    assert_eq!(content(&fresh), content(&carried));
    assert!(fresh.wal_frames > committed.wal_frames);
    assert_eq!(fresh.wal_frames as i64, checkpoint_log(&conn));
}

#[test]
fn a_truncated_or_uncommitted_tail_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = wal_db(
        dir.path(),
        "CREATE TABLE t(x); INSERT INTO t VALUES (1); PRAGMA user_version=1;",
    );
    let first = facts_of(&db, None).unwrap().0;
    conn.execute_batch("INSERT INTO t VALUES (randomblob(9000)); PRAGMA user_version=2;")
        .unwrap();
    let full = std::fs::read(wal_path(&db)).unwrap();
    drop(conn);
    let frame = 24 + 4096;
    let frames = (full.len() - 32) / frame;
    let main = MainFile::read(&File::open(&db).unwrap()).unwrap();
    let copy = dir.path().join("cut-wal");
    // Cut into the middle of the last (commit) frame: the previous commit is the answer.
    std::fs::write(&copy, &full[..full.len() - 100]).unwrap();
    let (s, _) = read_wal(&copy, None).unwrap();
    assert_eq!(
        s.frames,
        frames as u64 - 1,
        "the user_version commit is cut off"
    );
    assert!(s.frames > first.wal_frames);
    assert_eq!(s.frames, recover(&full[..full.len() - 100]).0);
    let (f, _) = current_facts(&main.header, main.len, Some(&copy), None).unwrap();
    assert_eq!(f.user_version, 1);
    // A frame of the current generation appended without commit flag: not counted either.
    let mut tail = full.clone();
    let mut extra = full[full.len() - frame..].to_vec();
    extra[4..8].copy_from_slice(&[0; 4]);
    tail.extend_from_slice(&extra);
    std::fs::write(&copy, &tail).unwrap();
    let (f, _) = current_facts(&main.header, main.len, Some(&copy), None).unwrap();
    assert_eq!(f.wal_frames, frames as u64);
    assert_eq!(f.user_version, 2);
}

#[test]
fn an_empty_main_file_is_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let e = current_facts(&[], 0, Some(&dir.path().join("x-wal")), None).unwrap_err();
    assert_eq!(header_error(&e), Some(HeaderError::EmptyDatabase));
    let e = current_facts(b"SQLite", 6, None, None).unwrap_err();
    assert_eq!(header_error(&e), Some(HeaderError::TooShort { len: 6 }));
}

#[test]
fn page_1_comes_from_the_newest_committed_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = wal_db(dir.path(), "CREATE TABLE t(x);");
    let mut cursor = WalCursor::default();
    for v in [3, -4, 77] {
        conn.execute_batch(&format!("PRAGMA user_version={v}"))
            .unwrap();
        let (f, c) = facts_of(&db, Some(&cursor)).unwrap();
        assert_eq!(f.user_version, v);
        assert_eq!(f.page1_source, Page1Source::WalFrame(f.wal_frames));
        cursor = c;
    }
    let main = MainFile::read(&File::open(&db).unwrap()).unwrap();
    assert_eq!(
        parse_header(&main.header).unwrap().user_version,
        0,
        "not checkpointed"
    );
}

#[test]
fn a_carried_cursor_reads_only_the_new_frames() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = wal_db(dir.path(), "CREATE TABLE t(x);");
    for i in 0..64 {
        conn.execute(&format!("INSERT INTO t VALUES ({i})"), [])
            .unwrap();
    }
    let (fresh, cursor) = facts_of(&db, None).unwrap();
    assert!(fresh.wal_frames >= 64);
    assert_eq!(
        fresh.wal_frames,
        recover(&std::fs::read(wal_path(&db)).unwrap()).0
    );
    // Unchanged WAL: one re-read of the last commit frame and nothing else.
    let (same, cursor) = facts_of(&db, Some(&cursor)).unwrap();
    assert!(same.wal.resumed);
    assert_eq!(same.wal.frame_reads, 1);
    assert_eq!(content(&same), content(&fresh));
    // One new single-frame commit: a handful of reads, not 64.
    conn.execute("INSERT INTO t VALUES (1000)", []).unwrap();
    let (next, _) = facts_of(&db, Some(&cursor)).unwrap();
    let (again, _) = facts_of(&db, None).unwrap();
    assert_eq!(content(&next), content(&again));
    assert_eq!(next.wal_frames, fresh.wal_frames + 1);
    assert!(next.wal.frame_reads <= 4, "{}", next.wal.frame_reads);
    assert_eq!(next.wal_frames as i64, checkpoint_log(&conn));
    // A WAL deleted and created again (last connection closed) is a new file.
    drop(conn);
    let conn = Connection::open(&db).unwrap();
    conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
    let (f, _) = facts_of(&db, Some(&cursor)).unwrap();
    assert!(!f.wal.resumed);
    assert_eq!(f.wal_frames as i64, checkpoint_log(&conn));
}

#[test]
fn reading_while_a_writer_commits_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = wal_db(dir.path(), "CREATE TABLE t(x);");
    drop(conn);
    let writer_db = db.clone();
    // Commits of several frames, page 1 (user_version) first and the commit frame last;
    // an automatic checkpoint every few frames, so the log keeps restarting under the reader.
    let writer = std::thread::spawn(move || {
        let c = Connection::open(&writer_db).unwrap();
        c.execute_batch("PRAGMA wal_autocheckpoint=8; PRAGMA synchronous=OFF;")
            .unwrap();
        for i in 1..=400 {
            c.execute_batch(&format!(
                "BEGIN; INSERT INTO t VALUES (randomblob(5000)); PRAGMA user_version={i}; COMMIT;"
            ))
            .unwrap();
        }
    });
    let main = File::open(&db).unwrap();
    let wal = wal_path(&db);
    let (mut cursor, mut last, mut readings, mut busy) = (WalCursor::default(), 0, 0, 0);
    while !writer.is_finished() {
        match read_facts(|| MainFile::read(&main), Some(&wal), Some(&cursor)) {
            Ok((f, c)) => {
                assert!(f.user_version >= last, "{} after {last}", f.user_version);
                last = f.user_version;
                cursor = c;
                readings += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    writer.join().unwrap();
    let (f, _) = read_facts(|| MainFile::read(&main), Some(&wal), Some(&cursor)).unwrap();
    assert_eq!(f.user_version, 400);
    assert!(readings > 0, "{readings} readings, {busy} interrupted");
}

// ---- no panics on arbitrary bytes ----------------------------------------------------

/// A WAL whose header is valid (so frames are looked at), with `frames` made of the given
/// (belongs, page number, commit size) triples and `junk` bytes after them.
fn crafted_wal(page_size: u32, big: bool, frames: &[(bool, u32, u32)], junk: &[u8]) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&(WAL_MAGIC | u32::from(big)).to_be_bytes());
    w.extend_from_slice(&WAL_VERSION.to_be_bytes());
    w.extend_from_slice(&page_size.to_be_bytes());
    w.extend_from_slice(&0u32.to_be_bytes());
    w.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let ck = wal_checksum(big, &w[..24], (0, 0));
    w.extend_from_slice(&ck.0.to_be_bytes());
    w.extend_from_slice(&ck.1.to_be_bytes());
    for &(belongs, pgno, commit) in frames {
        w.extend_from_slice(&pgno.to_be_bytes());
        w.extend_from_slice(&commit.to_be_bytes());
        w.extend_from_slice(if belongs {
            &[1, 2, 3, 4, 5, 6, 7, 8]
        } else {
            &[9; 8]
        });
        w.extend_from_slice(&[0; 8]);
        let mut page = vec![0u8; page_size as usize];
        if pgno == 1 {
            page[..HEADER_LEN].copy_from_slice(&synthetic_header());
            page[60..64].copy_from_slice(&(w.len() as u32).to_be_bytes());
        }
        w.extend_from_slice(&page);
    }
    w.extend_from_slice(junk);
    w
}

/// The definition, computed the slow way: longest prefix of belonging frames, then the last
/// commit frame in it and the newest page-1 frame at or before that.
fn salt_model(frames: &[(bool, u32, u32)]) -> (u64, Option<u64>) {
    let prefix = frames
        .iter()
        .take_while(|(b, pgno, _)| *b && *pgno != 0)
        .count();
    let commit = frames[..prefix]
        .iter()
        .rposition(|f| f.2 != 0)
        .map_or(0, |i| i + 1);
    let page1 = frames[..commit]
        .iter()
        .rposition(|f| f.1 == 1)
        .map(|i| i as u64 + 1);
    (commit as u64, page1)
}

proptest! {
    // ProptestConfig::default(): 256 cases unless PROPTEST_CASES says otherwise.
    #[test]
    fn any_100_bytes_parse_or_fail_cleanly(
        mut bytes in prop::array::uniform32(any::<u8>()).prop_flat_map(|a| {
            (Just(a), prop::collection::vec(any::<u8>(), 68))
        }).prop_map(|(a, b)| {
            let mut h = [0u8; HEADER_LEN];
            h[..32].copy_from_slice(&a);
            h[32..].copy_from_slice(&b);
            h
        }),
        keep_magic in any::<bool>(),
        len in 0u64..1 << 20,
    ) {
        if keep_magic {
            bytes[..16].copy_from_slice(MAGIC);
            bytes[21..24].copy_from_slice(&[64, 32, 32]);
        }
        if let Ok(h) = parse_header(&bytes) {
            prop_assert!((512..=65536).contains(&h.page_size));
            prop_assert!(h.page_size.is_power_of_two());
            let _ = (h.text_encoding(), h.auto_vacuum(), h.usable_size());
        }
        let _ = current_facts(&bytes, len, None, None);
    }

    #[test]
    fn any_wal_bytes_read_without_panic(
        raw in prop::collection::vec(any::<u8>(), 0..3000),
        good in prop::collection::vec(
            (prop::sample::select(vec![1u32, 1, 2, 3, 7]),
             prop::sample::select(vec![0u32, 0, 0, 1, 5, 9])),
            0..40),
        tail in prop::collection::vec(
            (any::<bool>(), prop::sample::select(vec![0u32, 1, 2]), prop::sample::select(vec![0u32, 3])),
            0..10),
        split in any::<prop::sample::Index>(),
        big in any::<bool>(),
        header in prop::collection::vec(any::<u8>(), 100),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r-wal");
        // Raw bytes: anything may come back, but no panic and no error other than I/O ones.
        std::fs::write(&path, &raw).unwrap();
        let _ = read_wal(&path, None);
        let _ = current_facts(&header, 4096, Some(&path), None);

        // A crafted generation (belonging frames, then frames of other salts or page 0, as
        // SQLite leaves them): the result is the definition, fresh or resumed at any point.
        let frames: Vec<(bool, u32, u32)> = good
            .iter()
            .map(|&(pgno, commit)| (true, pgno, commit))
            .chain(tail.iter().map(|&(salted, pgno, commit)| {
                if salted { (true, 0, commit) } else { (false, pgno, commit) }
            }))
            .collect();
        let wal = crafted_wal(512, big, &frames, &raw[..raw.len().min(700)]);
        let (want_frames, want_page1) = salt_model(&frames);
        let cut = 32 + split.index(frames.len() + 1) * (24 + 512);
        std::fs::write(&path, &wal[..cut]).unwrap();
        let (_, cursor) = read_wal(&path, None).unwrap();
        std::fs::write(&path, &wal).unwrap();
        let (fresh, _) = read_wal(&path, None).unwrap();
        let (carried, _) = read_wal(&path, Some(&cursor)).unwrap();
        prop_assert_eq!(fresh.frames, want_frames);
        prop_assert_eq!(fresh.page1_frame, want_page1);
        prop_assert_eq!(carried.frames, want_frames);
        prop_assert_eq!(carried.page1_frame, want_page1);
        prop_assert_eq!(&carried.page1, &fresh.page1);
        prop_assert!(fresh.frame_reads <= 2 * frames.len() as u64 + 8);
        let _ = current_facts(&header, 1 << 20, Some(&path), Some(&cursor));
    }
}

// ---- the property: random write histories on real SQLite files ----------------------

#[derive(Debug, Clone)]
struct Setup {
    page_size: u32,
    encoding: &'static str,
    auto_vacuum: &'static str,
    wal: bool,
    autocheckpoint: u32,
    cache_size: i32,
    synchronous: &'static str,
}

#[derive(Debug, Clone)]
enum Op {
    CreateTable,
    Insert {
        pick: u8,
        rows: u16,
        size: u16,
    },
    Delete {
        pick: u8,
        modulo: u8,
    },
    DropTable {
        pick: u8,
    },
    CreateIndex {
        pick: u8,
    },
    UserVersion(i32),
    Vacuum,
    ChangeLayout {
        page_size: u32,
        auto_vacuum: &'static str,
    },
    IncrementalVacuum,
    Checkpoint(&'static str),
    Reopen,
    SecondWriter {
        rows: u16,
    },
    JournalMode {
        wal: bool,
    },
    RolledBack {
        rows: u16,
    },
}

fn page_sizes() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => prop::sample::select(vec![512u32, 1024, 2048, 4096]),
        1 => prop::sample::select(vec![8192u32, 16384, 32768, 65536]),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        page_sizes(),
        prop::sample::select(vec!["UTF-8", "UTF-16le", "UTF-16be"]),
        prop::sample::select(vec!["NONE", "FULL", "INCREMENTAL"]),
        prop::bool::weighted(0.85),
        prop::sample::select(vec![0u32, 0, 5, 1000]),
        prop::sample::select(vec![-2000, 10]),
        prop::sample::select(vec!["OFF", "OFF", "NORMAL"]),
    )
        .prop_map(
            |(page_size, encoding, auto_vacuum, wal, autocheckpoint, cache_size, synchronous)| {
                Setup {
                    page_size,
                    encoding,
                    auto_vacuum,
                    wal,
                    autocheckpoint,
                    cache_size,
                    synchronous,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::CreateTable),
        8 => (any::<u8>(), 1u16..40, prop::sample::select(vec![1u16, 10, 100, 700, 3000, 9000]))
            .prop_map(|(pick, rows, size)| Op::Insert { pick, rows, size }),
        3 => (any::<u8>(), 1u8..5).prop_map(|(pick, modulo)| Op::Delete { pick, modulo }),
        1 => any::<u8>().prop_map(|pick| Op::DropTable { pick }),
        2 => any::<u8>().prop_map(|pick| Op::CreateIndex { pick }),
        2 => any::<i32>().prop_map(Op::UserVersion),
        1 => Just(Op::Vacuum),
        1 => (page_sizes(), prop::sample::select(vec!["NONE", "FULL", "INCREMENTAL"]))
            .prop_map(|(page_size, auto_vacuum)| Op::ChangeLayout { page_size, auto_vacuum }),
        1 => Just(Op::IncrementalVacuum),
        3 => prop::sample::select(vec!["PASSIVE", "FULL", "RESTART", "TRUNCATE"]).prop_map(Op::Checkpoint),
        1 => Just(Op::Reopen),
        2 => (1u16..30).prop_map(|rows| Op::SecondWriter { rows }),
        1 => prop::bool::weighted(0.6).prop_map(|wal| Op::JournalMode { wal }),
        1 => (50u16..300).prop_map(|rows| Op::RolledBack { rows }),
    ]
}

/// A database with a live writer connection, like an application's.
struct World {
    _dir: tempfile::TempDir,
    path: PathBuf,
    setup: Setup,
    writer: Option<Connection>,
    /// The reader's own long-lived descriptor of the main file: closing a descriptor
    /// would drop the POSIX locks of the writer connection in this same process.
    main_fd: File,
    tables: Vec<String>,
    next_table: u32,
}

impl World {
    fn new(setup: Setup) -> World {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size={}; PRAGMA encoding='{}'; PRAGMA auto_vacuum={};",
            setup.page_size, setup.encoding, setup.auto_vacuum
        ))
        .unwrap();
        if setup.wal {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        let main_fd = File::open(&path).unwrap();
        let mut w = World {
            _dir: dir,
            path,
            setup,
            writer: None,
            main_fd,
            tables: Vec::new(),
            next_table: 0,
        };
        w.configure(&conn);
        w.writer = Some(conn);
        w
    }

    fn configure(&self, conn: &Connection) {
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint={}; PRAGMA cache_size={}; PRAGMA synchronous={};",
            self.setup.autocheckpoint, self.setup.cache_size, self.setup.synchronous
        ))
        .unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
    }

    fn conn(&self) -> &Connection {
        self.writer.as_ref().unwrap()
    }

    /// A table to work on, created first if there is none (so that few steps are no-ops).
    fn table(&mut self, pick: u8) -> String {
        if self.tables.is_empty() {
            self.apply(&Op::CreateTable);
        }
        self.tables[pick as usize % self.tables.len()].clone()
    }

    fn insert_sql(t: &str, rows: u16, size: u16) -> String {
        format!(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < {rows})
             INSERT INTO {t}(k, v) SELECT random() % 1000, randomblob({size}) FROM c;"
        )
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::CreateTable => {
                let t = format!("t{}", self.next_table);
                self.next_table += 1;
                self.conn()
                    .execute_batch(&format!(
                        "CREATE TABLE {t}(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)"
                    ))
                    .unwrap();
                self.tables.push(t);
            }
            Op::Insert { pick, rows, size } => {
                let t = self.table(*pick);
                self.conn()
                    .execute_batch(&Self::insert_sql(&t, *rows, *size))
                    .unwrap();
            }
            Op::Delete { pick, modulo } => {
                let t = self.table(*pick);
                self.conn()
                    .execute_batch(&format!("DELETE FROM {t} WHERE id % {modulo} = 0"))
                    .unwrap();
            }
            Op::DropTable { pick } => {
                if !self.tables.is_empty() {
                    let t = self.table(*pick);
                    self.conn()
                        .execute_batch(&format!("DROP TABLE {t}"))
                        .unwrap();
                    self.tables.retain(|x| *x != t);
                }
            }
            Op::CreateIndex { pick } => {
                let t = self.table(*pick);
                self.conn()
                    .execute_batch(&format!("CREATE INDEX IF NOT EXISTS {t}_k ON {t}(k)"))
                    .unwrap();
            }
            Op::UserVersion(v) => {
                self.conn()
                    .execute_batch(&format!("PRAGMA user_version={v}"))
                    .unwrap();
            }
            Op::Vacuum => self.conn().execute_batch("VACUUM").unwrap(),
            Op::ChangeLayout {
                page_size,
                auto_vacuum,
            } => {
                // The page size only changes outside WAL mode; both readings must agree anyway.
                self.conn()
                    .execute_batch(&format!(
                        "PRAGMA page_size={page_size}; PRAGMA auto_vacuum={auto_vacuum}; VACUUM;"
                    ))
                    .unwrap();
            }
            Op::IncrementalVacuum => {
                self.conn()
                    .execute_batch("PRAGMA incremental_vacuum(3)")
                    .unwrap();
            }
            Op::Checkpoint(mode) => {
                let _: i64 = self
                    .conn()
                    .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(0))
                    .unwrap();
            }
            Op::Reopen => {
                self.writer = None;
                let conn = Connection::open(&self.path).unwrap();
                self.configure(&conn);
                self.writer = Some(conn);
            }
            Op::SecondWriter { rows } => {
                let other = Connection::open(&self.path).unwrap();
                other
                    .busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                if self.tables.is_empty() {
                    let t = format!("t{}", self.next_table);
                    self.next_table += 1;
                    other
                        .execute_batch(&format!(
                            "CREATE TABLE {t}(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)"
                        ))
                        .unwrap();
                    self.tables.push(t);
                }
                let t = self.table(*rows as u8);
                other
                    .execute_batch(&Self::insert_sql(&t, *rows, 200))
                    .unwrap();
            }
            Op::JournalMode { wal } => {
                let want = if *wal { "wal" } else { "delete" };
                let mode: String = self
                    .conn()
                    .query_row(&format!("PRAGMA journal_mode={want}"), [], |r| r.get(0))
                    .unwrap();
                assert_eq!(mode, want);
            }
            Op::RolledBack { rows } => {
                let t = self.table(0);
                let c = self.conn();
                c.execute_batch("BEGIN").unwrap();
                c.execute_batch(&Self::insert_sql(&t, *rows, 2000)).unwrap();
                c.execute_batch("ROLLBACK").unwrap();
            }
        }
    }

    /// Reads the facts with a fresh and with the carried cursor, then compares them with a
    /// read-only SQLite connection opened afterwards.
    fn check(&self, carried: &mut WalCursor, step: usize) -> Result<(), TestCaseError> {
        let wal = wal_path(&self.path);
        let main = MainFile::read(&self.main_fd).unwrap();
        let fresh = current_facts(main.bytes(), main.len, Some(&wal), None);
        let resumed = read_facts(|| MainFile::read(&self.main_fd), Some(&wal), Some(carried));
        let reference = recover(&std::fs::read(&wal).unwrap_or_default());

        let ro = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        let q = |sql: &str| ro.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        let page_count = q("PRAGMA page_count");
        let page_size = q("PRAGMA page_size");
        let freelist = q("PRAGMA freelist_count");
        let user_version = q("PRAGMA user_version");
        let schema_version = q("PRAGMA schema_version");
        let auto_vacuum = q("PRAGMA auto_vacuum");
        let encoding: String = ro.query_row("PRAGMA encoding", [], |r| r.get(0)).unwrap();
        drop(ro);

        let (fresh, (resumed, cursor)) = match (fresh, resumed) {
            (Ok((f, _)), Ok(r)) => (f, r),
            (Err(a), Err(b)) => {
                // The one legitimate gap: a database with no page on disk yet.
                prop_assert_eq!(
                    header_error(&a),
                    Some(HeaderError::EmptyDatabase),
                    "step {}",
                    step
                );
                prop_assert_eq!(header_error(&b), Some(HeaderError::EmptyDatabase));
                prop_assert_eq!(main.len, 0);
                prop_assert_eq!(page_count, 0);
                *carried = WalCursor::default();
                return Ok(());
            }
            (a, b) => {
                return Err(TestCaseError::fail(format!(
                    "step {step}: fresh {a:?}, carried {b:?}"
                )));
            }
        };
        prop_assert_eq!(
            content(&fresh),
            content(&resumed),
            "step {}: fresh vs carried",
            step
        );
        let f = &fresh;
        prop_assert_eq!(
            i64::from(f.page_size),
            page_size,
            "page_size, step {}",
            step
        );
        prop_assert_eq!(f.pages as i64, page_count, "page_count, step {}", step);
        prop_assert_eq!(
            i64::from(f.freelist_pages as i32),
            freelist,
            "freelist_count, step {}",
            step
        );
        prop_assert_eq!(
            i64::from(f.user_version),
            user_version,
            "user_version, step {}",
            step
        );
        prop_assert_eq!(
            i64::from(f.schema_version as i32),
            schema_version,
            "schema_version, step {}",
            step
        );
        prop_assert_eq!(
            f.encoding.pragma_name(),
            encoding.as_str(),
            "encoding, step {}",
            step
        );
        prop_assert_eq!(
            f.auto_vacuum.pragma_value(),
            auto_vacuum,
            "auto_vacuum, step {}",
            step
        );
        // Frames, last commit size and page 1 agree with a checksum-verifying recovery.
        prop_assert_eq!(f.wal_frames, reference.0, "wal frames, step {}", step);
        prop_assert_eq!(f.wal.db_pages, reference.1, "commit size, step {}", step);
        prop_assert_eq!(
            f.wal.page1_frame,
            reference.2.map(|p| p.0),
            "page-1 frame, step {}",
            step
        );
        prop_assert_eq!(f.wal.page1, reference.2.map(|p| p.1));
        *carried = cursor;
        Ok(())
    }
}

proptest! {
    // ProptestConfig::default(): 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig { max_shrink_iters: 200, ..ProptestConfig::default() })]
    #[test]
    fn facts_from_files_match_sqlite_after_every_step(
        setup in setup(),
        ops in prop::collection::vec(op(), 1..16),
    ) {
        let mut world = World::new(setup);
        let mut cursor = WalCursor::default();
        world.check(&mut cursor, 0)?;
        for (i, op) in ops.iter().enumerate() {
            world.apply(op);
            world.check(&mut cursor, i + 1)?;
        }
    }
}
