//! Backup file names: `{database}-{YYYY-MM-DD_HH-MM-SS}[-{label}].db[.gz]`, in UTC, parsed
//! strictly so that one database never claims another's backups.

use std::path::Path;
use std::thread;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

const TIMESTAMP_FORMAT: &str = "%Y-%m-%d_%H-%M-%S";
const TIMESTAMP_LEN: usize = 19;
const MAX_LABEL_LEN: usize = 64;

/// A label goes into a file name: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A database name goes into a file name too: not empty, no path separators, not hidden.
pub fn valid_database_name(database: &str) -> bool {
    !database.is_empty() && !database.starts_with('.') && !database.contains(['/', '\\', '\0'])
}

/// The file name of a backup taken at `at`.
pub fn backup_file_name(
    database: &str,
    at: &DateTime<Utc>,
    label: Option<&str>,
    compressed: bool,
) -> String {
    let mut name = format!("{database}-{}", at.format(TIMESTAMP_FORMAT));
    if let Some(label) = label {
        name.push('-');
        name.push_str(label);
    }
    name.push_str(".db");
    if compressed {
        name.push_str(".gz");
    }
    name
}

/// What a backup file name says.
#[derive(Debug, PartialEq)]
pub struct ParsedName {
    /// When the snapshot was taken, to the second.
    pub at: DateTime<Utc>,
    /// The label, if any.
    pub label: Option<String>,
    /// Whether the file is gzipped.
    pub compressed: bool,
}

/// Parses a backup file name of `database` strictly: the `{database}-` prefix, then a valid
/// timestamp, so database `app` never claims the backups of `app-2`.
pub fn parse_backup_name(database: &str, file_name: &str) -> Option<ParsedName> {
    let rest = file_name.strip_prefix(database)?.strip_prefix('-')?;
    let stamp = rest.get(..TIMESTAMP_LEN)?;
    let shape_ok = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 | 13 | 16 => b == b'-',
        10 => b == b'_',
        _ => b.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let at = NaiveDateTime::parse_from_str(stamp, TIMESTAMP_FORMAT)
        .ok()?
        .and_utc();
    let rest = &rest[TIMESTAMP_LEN..];
    let (rest, compressed) = match rest.strip_suffix(".db.gz") {
        Some(r) => (r, true),
        None => (rest.strip_suffix(".db")?, false),
    };
    let label = match rest {
        "" => None,
        r => {
            let label = r.strip_prefix('-')?;
            if !valid_label(label) {
                return None;
            }
            Some(label.to_owned())
        }
    };
    Some(ParsedName {
        at,
        label,
        compressed,
    })
}

/// Two backups with the same label in the same second would get the same name; wait for the
/// next second rather than fail (one action runs at a time per database, so this is the only
/// way it happens).
pub fn wait_for_free_name(database: &str, dir: &Path, label: Option<&str>) {
    for _ in 0..3 {
        let now = Utc::now();
        let taken = [false, true].iter().any(|&gz| {
            dir.join(backup_file_name(database, &now, label, gz))
                .exists()
        });
        if !taken {
            return;
        }
        let into_second = u64::from(now.timestamp_subsec_millis());
        thread::sleep(Duration::from_millis(1001 - into_second.min(1000)));
    }
}

/// Unix seconds of a UTC time.
pub fn unix_seconds(at: &DateTime<Utc>) -> f64 {
    at.timestamp() as f64 + f64::from(at.timestamp_subsec_micros()) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, TIMESTAMP_FORMAT)
            .unwrap()
            .and_utc()
    }

    #[test]
    fn names_round_trip() {
        let t = at("2024-03-05_07-08-09");
        let name = backup_file_name("app", &t, Some("daily"), true);
        assert_eq!(name, "app-2024-03-05_07-08-09-daily.db.gz");
        assert_eq!(
            parse_backup_name("app", &name),
            Some(ParsedName {
                at: t,
                label: Some("daily".into()),
                compressed: true
            })
        );
        let plain = backup_file_name("my-app", &t, None, false);
        assert_eq!(plain, "my-app-2024-03-05_07-08-09.db");
        assert_eq!(parse_backup_name("my-app", &plain).unwrap().label, None);
    }

    #[test]
    fn names_of_other_databases_and_junk_are_not_claimed() {
        // `app` must not claim the backups of `app-2`.
        assert_eq!(
            parse_backup_name("app", "app-2-2024-03-05_07-08-09.db"),
            None
        );
        assert!(parse_backup_name("app-2", "app-2-2024-03-05_07-08-09.db").is_some());
        for junk in [
            "app-2024-03-05_07-08-09.db.meta.json",
            ".app.123-4.db.tmp",
            "app-2024-13-05_07-08-09.db",
            "app-2024-03-05_07-08-9.db",
            "app-2024-03-05_07-08-09.sqlite",
            "app-2024-03-05_07-08-09-.db",
            "app-2024-03-05_07-08-09-bad label.db",
            "app-2024-03-05_07-08-09daily.db",
            "app2024-03-05_07-08-09.db",
            "app-２024-03-05_07-08-09.db",
        ] {
            assert_eq!(parse_backup_name("app", junk), None, "{junk}");
        }
    }

    #[test]
    fn labels() {
        assert!(valid_label("pre-restore"));
        assert!(valid_label(&"a".repeat(64)));
        for bad in ["", "a/b", "..", "a b", "é", &"a".repeat(65)] {
            assert!(!valid_label(bad), "{bad}");
        }
    }
}
