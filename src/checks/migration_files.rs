//! Comparing a migrations table with the application's migration files (`migrations.dir`):
//! how many files are not applied yet (`sqlite_migrations_pending`) and how many applied
//! migrations no longer match the checksum their tool recorded (`sqlite_migrations_drifted`).
//!
//! Each tool names its files its own way; where the name says which row a file belongs to,
//! the pending count is decidable:
//!
//! | framework | files in `migrations.dir` | pending | drift |
//! |---|---|---|---|
//! | `sqlx` | `<version>_<description>.sql` or `.up.sql` | versions without a row | SHA-384 of the file's bytes vs the BLOB `checksum` |
//! | `golang-migrate` | `<version>_<title>.up.<ext>` | versions above the table's one version | — |
//! | `schema_migrations`, `custom` | `<version>_<name>.<ext>` (Rails, dbmate), not `.down.` | versions without a row | hex SHA-256 of the file vs a `checksum` column, if the table has one |
//! | `goose` | `<version>_<name>.sql` or `.go` | versions without an applied row | — |
//! | `flyway` | `V<version>__<description>.sql` (`_` in the version is `.`) | versions without a successful row | Flyway's CRC32 (below) vs `checksum` |
//! | `refinery` | `V<version>__<name>.sql` or `U...` | versions without a row | refinery's SipHash-1-3 (below) vs `checksum` |
//! | `diesel` | directories `<version>_<name>/` (dashes in the version dropped) | versions without a row | — |
//! | `prisma` | directories `<name>/migration.sql` | names without an applied row | hex SHA-256 of `migration.sql` vs `checksum` |
//! | `knex`, `sequelize` | `*.js`, `*.ts`, `*.cjs`, `*.mjs` | file names without a row | — |
//! | `ef_core` | `<id>.cs`, not `.Designer.cs` nor the model snapshot | ids without a row | — |
//! | `django` | `<app>/migrations/NNNN_<name>.py` under the directory, down to three levels | `(app, name)` without a row | — |
//! | `alembic` | the `versions/` scripts, `revision = '…'` and `down_revision = …` read from each | revisions that are neither an applied head nor below one | — |
//!
//! Versions are compared as numbers where the tool's are numbers (leading zeros do not
//! matter), else as text. Django's app label is taken to be the directory name above
//! `migrations/`, its default; an app with a custom `AppConfig.label` shows as pending. A
//! migration applied from a file that was since deleted is neither pending nor drifted.
//!
//! Flyway's checksum is the CRC32 of the file's lines as UTF-8 without their line breaks
//! (`\n`, `\r\n` or `\r`), a byte order mark dropped from the first line, stored as a signed
//! 32-bit integer: so a file whose line endings alone changed has not drifted, as for Flyway.
//! refinery's checksum is SipHash-1-3 with zero keys over Rust's `Hash` encoding of the
//! migration's name (the file name between `__` and `.sql`), its version (an `i32`, four
//! little-endian bytes) and its SQL, each string followed by a `0xff` byte, stored as decimal
//! text. Migrations written in Rust (`.rs`) have no file SQL to hash and are not compared.
//!
//! This reads every file of the directory, once per background check (migration files are
//! small and few); it never touches the database.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256, Sha384};

use crate::checks::migrations::{AppliedMigration, Checksum, Framework};

/// What the files say about a migrations table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileFindings {
    /// Files not applied; `None` where the tool's file names do not tell.
    pub pending: Option<u64>,
    /// Applied migrations whose file no longer matches the recorded checksum; `None` where
    /// the tool records no checksum this can recompute.
    pub drifted: Option<u64>,
}

/// How a tool's checksum of one file is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Algorithm {
    Sha384Bytes,
    Sha256Hex,
    FlywayCrc32,
    RefinerySip,
}

/// A migration file: the key its row carries, and the file whose checksum is recorded.
struct MigrationFile {
    key: String,
    path: PathBuf,
}

/// Compares `applied` (rows of a `framework` table; `checksums` whether it has a checksum
/// column) with the files in `dir`.
pub fn compare(
    framework: Framework,
    checksums: bool,
    dir: &Path,
    applied: &[AppliedMigration],
) -> std::io::Result<FileFindings> {
    if framework == Framework::Alembic {
        return alembic_pending(dir, applied).map(|pending| FileFindings {
            pending: Some(pending),
            drifted: None,
        });
    }
    let files = files_of(framework, dir)?;
    let numeric = !matches!(
        framework,
        Framework::Prisma
            | Framework::Knex
            | Framework::Sequelize
            | Framework::EfCore
            | Framework::Django
    );
    let norm = |k: &str| {
        if framework == Framework::Flyway {
            flyway_version(k)
        } else if numeric {
            k.trim_start_matches('0').to_owned()
        } else {
            k.to_owned()
        }
    };
    let rows: BTreeMap<String, &AppliedMigration> =
        applied.iter().map(|m| (norm(&m.key), m)).collect();
    let pending = if framework == Framework::GolangMigrate {
        // One row, the current version: every newer up file is pending.
        let current = applied
            .iter()
            .filter_map(|m| m.key.parse::<u64>().ok())
            .max();
        files
            .iter()
            .filter(|f| f.key.parse::<u64>().ok() > current)
            .count()
    } else {
        let keys: BTreeSet<String> = files.iter().map(|f| norm(&f.key)).collect();
        keys.iter().filter(|k| !rows.contains_key(*k)).count()
    };
    let algorithm = match framework {
        Framework::Sqlx => Some(Algorithm::Sha384Bytes),
        Framework::Flyway => Some(Algorithm::FlywayCrc32),
        Framework::Refinery => Some(Algorithm::RefinerySip),
        Framework::Prisma | Framework::SchemaMigrations | Framework::Custom => {
            Some(Algorithm::Sha256Hex)
        }
        _ => None,
    }
    .filter(|_| checksums);
    let drifted = match algorithm {
        None => None,
        Some(a) => {
            let mut n = 0;
            for f in &files {
                let Some(recorded) = rows.get(&norm(&f.key)).and_then(|m| m.checksum.as_ref())
                else {
                    continue;
                };
                if !matches(a, recorded, f, &std::fs::read(&f.path)?) {
                    n += 1;
                }
            }
            Some(n)
        }
    };
    Ok(FileFindings {
        pending: Some(pending as u64),
        drifted,
    })
}

/// Whether `bytes`, the contents of `file`, hash to `recorded` under `a`.
fn matches(a: Algorithm, recorded: &Checksum, file: &MigrationFile, bytes: &[u8]) -> bool {
    match (a, recorded) {
        (Algorithm::RefinerySip, Checksum::Text(t)) => match refinery_name(&file.path) {
            Some(name) => {
                let version = file.key.parse::<i32>().unwrap_or_default();
                t.parse::<u64>().ok() == Some(refinery_checksum(&name, version, bytes))
            }
            None => true,
        },
        (Algorithm::Sha384Bytes, Checksum::Bytes(b)) => Sha384::digest(bytes).as_slice() == b,
        (Algorithm::Sha256Hex, Checksum::Text(t)) => {
            hex(Sha256::digest(bytes).as_slice()).eq_ignore_ascii_case(t)
        }
        (Algorithm::FlywayCrc32, Checksum::Integer(i)) => i64::from(flyway_checksum(bytes)) == *i,
        (Algorithm::FlywayCrc32, Checksum::Text(t)) => {
            t.parse::<i64>().ok() == Some(i64::from(flyway_checksum(bytes)))
        }
        // A checksum stored in another form than the tool writes cannot be compared: not
        // counted as drift.
        _ => true,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Flyway's checksum of a migration file: CRC32 of its lines without line breaks, a leading
/// byte order mark dropped, as a signed 32-bit integer.
pub fn flyway_checksum(bytes: &[u8]) -> i32 {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut crc = crc32fast::Hasher::new();
    for line in bytes.split(|b| *b == b'\n' || *b == b'\r') {
        crc.update(line);
    }
    crc.finalize() as i32
}

/// refinery's checksum of migration `name`, `version` with SQL `sql`.
pub fn refinery_checksum(name: &str, version: i32, sql: &[u8]) -> u64 {
    let mut data = Vec::with_capacity(name.len() + sql.len() + 6);
    data.extend_from_slice(name.as_bytes());
    data.push(0xff);
    data.extend_from_slice(&version.to_le_bytes());
    data.extend_from_slice(sql);
    data.push(0xff);
    siphash13(&data)
}

/// The name part of a refinery SQL file, `V<version>__<name>.sql`.
fn refinery_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let (_, name) = file.strip_suffix(".sql")?.split_once("__")?;
    Some(name.to_owned())
}

/// SipHash-1-3 with both keys 0 (what `siphasher::sip::SipHasher13::new()` computes over the
/// bytes written to it).
fn siphash13(data: &[u8]) -> u64 {
    let mut v = [
        0x736f_6d65_7073_6575u64,
        0x646f_7261_6e64_6f6du64,
        0x6c79_6765_6e65_7261u64,
        0x7465_6462_7974_6573u64,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let compress = |v: &mut [u64; 4], m: u64| {
        v[3] ^= m;
        round(v);
        v[0] ^= m;
    };
    let words = data.chunks_exact(8);
    let rest = words.remainder();
    for w in words {
        compress(&mut v, u64::from_le_bytes(w.try_into().unwrap_or_default()));
    }
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    compress(
        &mut v,
        u64::from_le_bytes(last) | ((data.len() as u64) << 56),
    );
    v[2] ^= 0xff;
    for _ in 0..3 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// A Flyway version as Flyway compares them: `_` is `.`, leading zeros of each part and
/// trailing `.0` parts do not count.
fn flyway_version(v: &str) -> String {
    let mut parts: Vec<String> = v
        .replace('_', ".")
        .split('.')
        .map(|p| match p.trim_start_matches('0') {
            "" => "0".to_owned(),
            p => p.to_owned(),
        })
        .collect();
    while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
        parts.pop();
    }
    parts.join(".")
}

/// The leading digits of `name` followed by `sep`, if it starts that way.
fn leading_version<'a>(name: &'a str, sep: &str) -> Option<&'a str> {
    let end = name.find(|c: char| !c.is_ascii_digit())?;
    (end > 0 && name[end..].starts_with(sep)).then(|| &name[..end])
}

/// The migration files of `framework` in `dir`.
fn files_of(framework: Framework, dir: &Path) -> std::io::Result<Vec<MigrationFile>> {
    if framework == Framework::Django {
        let mut found = Vec::new();
        django_files(dir, 0, &mut found)?;
        return Ok(found);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_dir = entry.file_type()?.is_dir();
        let key = match framework {
            Framework::Diesel if is_dir => name
                .split_once('_')
                .map(|(v, _)| v.replace('-', ""))
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())),
            Framework::Prisma if is_dir && path.join("migration.sql").is_file() => {
                found.push(MigrationFile {
                    key: name,
                    path: path.join("migration.sql"),
                });
                continue;
            }
            _ if is_dir => None,
            Framework::Sqlx => (name.ends_with(".sql") && !name.ends_with(".down.sql"))
                .then(|| leading_version(&name, "_"))
                .flatten()
                .map(str::to_owned),
            Framework::GolangMigrate => name
                .contains(".up.")
                .then(|| leading_version(&name, "_"))
                .flatten()
                .map(str::to_owned),
            Framework::SchemaMigrations | Framework::Custom => (!name.contains(".down."))
                .then(|| leading_version(&name, "_"))
                .flatten()
                .map(str::to_owned),
            Framework::Goose => (name.ends_with(".sql") || name.ends_with(".go"))
                .then(|| leading_version(&name, "_"))
                .flatten()
                .map(str::to_owned),
            Framework::Flyway => name
                .strip_prefix('V')
                .filter(|_| name.ends_with(".sql"))
                .and_then(|rest| rest.split_once("__"))
                .map(|(v, _)| v.to_owned())
                .filter(|v| !v.is_empty()),
            Framework::Refinery => name
                .strip_prefix(['V', 'U'])
                .and_then(|rest| leading_version(rest, "__"))
                .map(str::to_owned),
            Framework::Knex | Framework::Sequelize => [".js", ".ts", ".cjs", ".mjs"]
                .iter()
                .any(|ext| name.ends_with(ext))
                .then(|| name.clone())
                .filter(|n| !n.starts_with('.')),
            Framework::EfCore => name
                .strip_suffix(".cs")
                .filter(|stem| !stem.ends_with(".Designer") && !stem.ends_with("ModelSnapshot"))
                .map(str::to_owned),
            _ => None,
        };
        if let Some(key) = key {
            found.push(MigrationFile { key, path });
        }
    }
    Ok(found)
}

/// Django's `<app>/migrations/NNNN_<name>.py` below `dir`, keyed `app/NNNN_<name>`.
fn django_files(dir: &Path, depth: usize, found: &mut Vec<MigrationFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let migrations = path.join("migrations");
        if migrations.is_dir() {
            let app = entry.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(&migrations)? {
                let file = file?;
                let name = file.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".py") else {
                    continue;
                };
                if leading_version(stem, "_").is_some() {
                    found.push(MigrationFile {
                        key: format!("{app}/{stem}"),
                        path: file.path(),
                    });
                }
            }
        }
        if depth < 2 && entry.file_name() != "migrations" {
            django_files(&path, depth + 1, found)?;
        }
    }
    Ok(())
}

/// Alembic: revisions in the scripts of `dir` that are neither an applied head (the rows of
/// `alembic_version`) nor an ancestor of one.
fn alembic_pending(dir: &Path, heads: &[AppliedMigration]) -> std::io::Result<u64> {
    let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "py") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        if let Some((revision, down)) = alembic_revision(&text) {
            parents.insert(revision, down);
        }
    }
    let mut applied: HashSet<String> = HashSet::new();
    let mut stack: Vec<String> = heads.iter().map(|h| h.key.clone()).collect();
    while let Some(rev) = stack.pop() {
        if applied.insert(rev.clone()) {
            stack.extend(parents.get(&rev).into_iter().flatten().cloned());
        }
    }
    Ok(parents.keys().filter(|r| !applied.contains(*r)).count() as u64)
}

/// `revision = '…'` and `down_revision = None | '…' | ('…', '…')` of an Alembic script
/// (with or without type annotations, either quote).
fn alembic_revision(text: &str) -> Option<(String, Vec<String>)> {
    let value = |key: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?;
            let rest = rest.trim_start();
            let rest = match rest.strip_prefix(':') {
                Some(annotated) => annotated.split_once('=')?.1,
                None => rest.strip_prefix('=')?,
            };
            Some(rest.trim().to_owned())
        })
    };
    let quoted = |v: &str| -> Vec<String> {
        v.split(['\'', '"'])
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let revision = quoted(&value("revision")?).into_iter().next()?;
    let down = value("down_revision")
        .map(|v| quoted(&v))
        .unwrap_or_default();
    Some((revision, down))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_checksum_ignores_line_endings_and_the_bom() {
        let lf = flyway_checksum(b"CREATE TABLE t(x);\nINSERT INTO t VALUES (1);\n");
        assert_eq!(
            lf,
            crc32fast::hash(b"CREATE TABLE t(x);INSERT INTO t VALUES (1);") as i32
        );
        assert_eq!(
            flyway_checksum(b"\xEF\xBB\xBFCREATE TABLE t(x);\r\nINSERT INTO t VALUES (1);"),
            lf
        );
        assert_ne!(flyway_checksum(b"CREATE TABLE t(y);\n"), lf);
    }

    #[test]
    fn flyway_versions_compare_as_flyway_does() {
        assert_eq!(flyway_version("1_1"), "1.1");
        assert_eq!(flyway_version("001.1.0"), "1.1");
        assert_eq!(flyway_version("2"), "2");
        assert_eq!(flyway_version("0"), "0");
    }

    #[test]
    fn alembic_revisions_with_and_without_annotations() {
        let old = "revision = 'abc'\ndown_revision = None\n";
        assert_eq!(alembic_revision(old), Some(("abc".into(), vec![])));
        let new = "revision: str = \"def\"\ndown_revision: Union[str, None] = 'abc'\n";
        assert_eq!(
            alembic_revision(new),
            Some(("def".into(), vec!["abc".into()]))
        );
        let merge = "revision = 'm'\ndown_revision = ('a', 'b')\n";
        assert_eq!(
            alembic_revision(merge),
            Some(("m".into(), vec!["a".into(), "b".into()]))
        );
    }
}
