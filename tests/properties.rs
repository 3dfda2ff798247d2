//! Property tests of the parsers fed by outsiders: sizes and durations from the config file,
//! backup file names and sidecars from the backup directory, control API bodies, and the WAL
//! and page-1 readers on arbitrary bytes. None may panic on any input. 256 cases per property
//! by default; `PROPTEST_CASES=100000 cargo test --test properties` for a long run.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use proptest::prelude::*;
use sqlite_exporter::actions::{Action, ACTIONS};
use sqlite_exporter::backup_dir::{self, backup_file_name, parse_backup_name, BackupMeta};
use sqlite_exporter::checks::backups::{examine, BackupState};
use sqlite_exporter::config::units::parse_size;
use sqlite_exporter::config::{ByteSize, HumanDuration};
use sqlite_exporter::sqlite::header::{parse_header_prefix, read_wal};
use sqlite_exporter::sqlite::wal;

/// A WAL header (valid magic and version, arbitrary rest) followed by arbitrary frames, or
/// bytes of any kind: both reach the frame reader's deeper paths.
fn wal_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 24..4096)
        )
            .prop_map(|(be, rest)| {
                let magic: u32 = if be { 0x377f_0683 } else { 0x377f_0682 };
                let mut b = magic.to_be_bytes().to_vec();
                b.extend_from_slice(&3_007_000u32.to_be_bytes());
                b.extend_from_slice(&rest);
                b
            }),
    ]
}

/// A page-1 header: arbitrary bytes, or the magic string followed by arbitrary bytes.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<u8>(), 84..600).prop_map(|rest| {
            let mut b = b"SQLite format 3\0".to_vec();
            b.extend_from_slice(&rest);
            b
        }),
    ]
}

proptest! {
    #[test]
    fn sizes_never_panic(s in "\\PC{0,24}") {
        let _ = parse_size(&s);
        let _ = serde_yaml::from_str::<ByteSize>(&s);
    }

    #[test]
    fn sizes_with_units_are_exact(n in 0u64..(1 << 30), unit in 0usize..6) {
        let (suffix, mult) =
            [("", 1u64), ("B", 1), ("kB", 1000), ("KiB", 1 << 10), ("MiB", 1 << 20), (" mb", 1_000_000)][unit];
        prop_assert_eq!(parse_size(&format!("{n}{suffix}")), Ok(n * mult));
    }

    #[test]
    fn durations_never_panic(s in "\\PC{0,24}") {
        let _ = serde_yaml::from_str::<HumanDuration>(&s);
    }

    #[test]
    fn backup_names_never_panic(db in "[a-z0-9._-]{1,12}", name in "\\PC{0,60}") {
        let _ = parse_backup_name(&db, &name);
        let _ = parse_backup_name(&db, &format!("{db}-{name}"));
    }

    #[test]
    fn backup_names_round_trip(
        db in "[a-z][a-z0-9_.-]{0,11}",
        secs in 0i64..4_102_444_800,
        label in proptest::option::of("[A-Za-z0-9_-]{1,64}"),
        compressed in any::<bool>(),
    ) {
        let at = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let name = backup_file_name(&db, &at, label.as_deref(), compressed);
        let parsed = parse_backup_name(&db, &name).expect("its own name parses");
        prop_assert_eq!(parsed.at, at);
        prop_assert_eq!(parsed.label, label);
        prop_assert_eq!(parsed.compressed, compressed);
    }

    #[test]
    fn control_api_bodies_never_panic(route in 0usize..ACTIONS.len(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Action::from_json(ACTIONS[route].route, &body);
    }

    #[test]
    fn control_api_json_bodies_never_panic(route in 0usize..ACTIONS.len(), key in "[a-z_]{1,10}", value in "\\PC{0,20}", n in any::<i64>()) {
        for body in [
            format!(r#"{{"{key}": {value:?}}}"#),
            format!(r#"{{"{key}": {n}}}"#),
            format!(r#"{{"mode": {value:?}}}"#),
            format!(r#"{{"backup": {value:?}}}"#),
            format!(r#"{{"label": {value:?}}}"#),
            format!(r#"{{"dry_run": {n}}}"#),
        ] {
            let _ = Action::from_json(ACTIONS[route].route, body.as_bytes());
        }
    }

    #[test]
    fn page_one_headers_never_panic(bytes in header_bytes()) {
        if let Ok(h) = parse_header_prefix(&bytes) {
            prop_assert!(h.page_size.is_power_of_two() && (512..=65536).contains(&h.page_size));
            prop_assert!(h.usable_size() >= 480);
        }
    }

    #[test]
    fn wal_readers_never_panic(bytes in wal_bytes()) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.db-wal");
        std::fs::write(&p, &bytes).unwrap();
        let _ = wal::frames(&p);
        if let Ok((_, cursor)) = read_wal(&p, None) {
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(&bytes[..bytes.len() / 2]).unwrap();
            let _ = read_wal(&p, Some(&cursor));
        }
    }

    #[test]
    fn sidecars_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), json in "\\PC{0,200}") {
        let _ = serde_json::from_slice::<BackupMeta>(&bytes);
        let _ = serde_json::from_str::<BackupMeta>(&json);
        let dir = tempfile::tempdir().unwrap();
        let name = "app-2024-01-01_00-00-00.db";
        std::fs::write(dir.path().join(name), b"").unwrap();
        std::fs::write(dir.path().join(format!("{name}.meta.json")), &bytes).unwrap();
        let list = backup_dir::list("app", dir.path()).unwrap();
        prop_assert_eq!(list.len(), 1);
        let v = examine(&list[0], Duration::from_secs(5), &AtomicBool::new(false));
        prop_assert_ne!(v.state, BackupState::Verified, "{:?}", v);
    }

    #[test]
    fn found_backups_of_arbitrary_bytes_never_panic(bytes in header_bytes(), gz in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let name = if gz { "app-2024-01-01_00-00-00.db.gz" } else { "app-2024-01-01_00-00-00.db" };
        std::fs::write(dir.path().join(name), &bytes).unwrap();
        let list = backup_dir::list("app", dir.path()).unwrap();
        let v = examine(&list[0], Duration::from_secs(5), &AtomicBool::new(false));
        prop_assert_ne!(v.state, BackupState::Verified, "{:?}", v);
    }
}
