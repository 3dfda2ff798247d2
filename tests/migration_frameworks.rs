//! The migrations tables of the common tools, found without configuration, against real
//! tables: Django's and Alembic's made by Django and Alembic themselves (installed from PyPI
//! into a virtualenv under the target directory on first use; a failure to install fails the
//! test), the others built from the DDL their tools issue on SQLite (goose, golang-migrate,
//! dbmate and Flyway have no package in this machine's sources, and sqlx's and Diesel's crates depend on other versions of
//! libsqlite3-sys than rusqlite's, while a build may hold only one crate that links
//! `sqlite3`; refinery is reproduced the same way). Each asserts the applied count, the last
//! applied time, the failure flag, and, against a migrations directory, the pending count and
//! drift.

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use sha2::{Digest, Sha384};
use sqlite_exporter::checks::migration_files;
use sqlite_exporter::checks::migrations::{self, survey, Framework};
use sqlite_exporter::checks::MigrationFigures;
use sqlite_exporter::config::Migrations;

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The one migrations table of the database at `db`, read with `dir` as `migrations.dir`.
fn only(db: &Path, dir: Option<&Path>) -> MigrationFigures {
    let conn = Connection::open(db).unwrap();
    let settings = Migrations {
        table: None,
        dir: dir.map(Path::to_path_buf),
    };
    let s = survey(&conn, &settings, None);
    assert_eq!(s.error, None);
    assert_eq!(s.figures.len(), 1, "one migrations table: {:?}", s.figures);
    s.figures.into_iter().next().unwrap()
}

fn assert_recent(t: Option<f64>) {
    let t = t.expect("a last applied time");
    assert!(
        (unix_now() - t).abs() < 600.0,
        "applied at {t}, now {}",
        unix_now()
    );
}

// ---------------------------------------------------------------------------------------------
// the real Python tools

/// A virtualenv with Django and Alembic, made once per target directory (by one test at a
/// time: the tests run in parallel, and two `venv` runs into one directory break each other).
fn python() -> PathBuf {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("migration-tools-venv");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import django, alembic, sqlalchemy"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&py) {
        return py;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run python3");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "django",
        "alembic",
        "sqlalchemy",
    ]));
    assert!(
        ready(&py),
        "Django and Alembic did not install into {venv:?}"
    );
    py
}

fn run_in(dir: &Path, program: &Path, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program:?}: {e}"));
    assert!(
        out.status.success(),
        "{program:?} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn django_migrations_made_by_django() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("shop/migrations")).unwrap();
    std::fs::write(d.join("shop/__init__.py"), "").unwrap();
    std::fs::write(d.join("shop/migrations/__init__.py"), "").unwrap();
    std::fs::write(
        d.join("settings.py"),
        "SECRET_KEY = 'test'\nINSTALLED_APPS = ['shop']\nUSE_TZ = True\n\
         DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': 'app.db'}}\n\
         DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'\n",
    )
    .unwrap();
    let models = |body: &str| {
        std::fs::write(
            d.join("shop/models.py"),
            format!("from django.db import models\n\n{body}"),
        )
        .unwrap()
    };
    let manage = |args: &[&str]| {
        let mut all = vec!["-m", "django"];
        all.extend_from_slice(args);
        all.push("--settings=settings");
        all.push("--pythonpath=.");
        run_in(d, &py, &all);
    };
    models("class Customer(models.Model):\n    name = models.TextField()\n");
    manage(&["makemigrations", "shop"]);
    models(
        "class Customer(models.Model):\n    name = models.TextField()\n\n\
         class Order(models.Model):\n    total = models.IntegerField()\n",
    );
    manage(&["makemigrations", "shop"]);
    manage(&["migrate", "shop", "0001"]);
    let db = d.join("app.db");

    let m = only(&db, Some(d));
    assert_eq!(m.framework, Framework::Django);
    assert_eq!(m.applied, 1);
    assert_eq!(m.failed, None, "django records no failures");
    assert_recent(m.last_applied);
    assert_eq!(m.pending, Some(1), "0002 is not applied");
    assert_eq!(m.drifted, None, "django keeps no checksum");

    manage(&["migrate", "shop"]);
    let m = only(&db, Some(d));
    assert_eq!((m.applied, m.pending), (2, Some(0)));
}

#[test]
fn alembic_version_made_by_alembic() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alembic = |args: &[&str]| {
        let mut all = vec!["-m", "alembic"];
        all.extend_from_slice(args);
        run_in(d, &py, &all);
    };
    alembic(&["init", "migrations"]);
    let ini = std::fs::read_to_string(d.join("alembic.ini")).unwrap();
    let ini = ini
        .lines()
        .map(|l| {
            if l.starts_with("sqlalchemy.url") {
                "sqlalchemy.url = sqlite:///app.db"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(d.join("alembic.ini"), ini).unwrap();
    alembic(&["revision", "--rev-id", "aaa1", "-m", "customers"]);
    alembic(&["revision", "--rev-id", "bbb2", "-m", "orders"]);
    alembic(&["revision", "--rev-id", "ccc3", "-m", "items"]);
    alembic(&["upgrade", "aaa1"]);
    let db = d.join("app.db");
    let versions = d.join("migrations/versions");

    let m = only(&db, Some(&versions));
    assert_eq!(m.framework, Framework::Alembic);
    assert_eq!(m.applied, 1, "one head");
    assert_eq!(m.failed, None);
    assert_eq!(m.last_applied, None, "alembic records no times");
    assert_eq!(m.pending, Some(2), "bbb2 and ccc3 are above the head");

    alembic(&["upgrade", "head"]);
    let m = only(&db, Some(&versions));
    assert_eq!((m.applied, m.pending), (1, Some(0)));
}

// ---------------------------------------------------------------------------------------------
// layouts reproduced from the tools' sources

fn db_with(dir: &Path, sql: &str) -> PathBuf {
    let path = dir.join("app.db");
    Connection::open(&path)
        .and_then(|c| c.execute_batch(sql))
        .expect("build database from SQL");
    path
}

fn files(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let m = dir.join("migrations");
    for (name, body) in files {
        let path = m.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    m
}

/// sqlx-sqlite's `_sqlx_migrations`, its checksum the SHA-384 of the file.
#[test]
fn sqlx_pending_and_drift() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = ("CREATE TABLE users(id);\n", "CREATE TABLE orders(id);\n");
    let m = files(
        dir.path(),
        &[
            ("20240101000000_users.sql", one),
            ("20240102000000_orders.sql", two),
            ("20240103000000_items.sql", "CREATE TABLE items(id);\n"),
        ],
    );
    let db = dir.path().join("app.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        );",
    )
    .unwrap();
    let insert = |version: i64, desc: &str, success: bool, sql: &str| {
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, ?3, ?4, 1)",
            rusqlite::params![version, desc, success, Sha384::digest(sql.as_bytes()).to_vec()],
        )
        .unwrap();
    };
    insert(20240101000000, "users", true, one);
    insert(20240102000000, "orders", true, two);

    let f = only(&db, Some(&m));
    assert_eq!(f.framework, Framework::Sqlx);
    assert_eq!((f.applied, f.failed), (2, Some(0)));
    assert_recent(f.last_applied);
    assert_eq!((f.pending, f.drifted), (Some(1), Some(0)));

    std::fs::write(
        m.join("20240102000000_orders.sql"),
        "CREATE TABLE orders(id, total);\n",
    )
    .unwrap();
    assert_eq!(
        only(&db, Some(&m)).drifted,
        Some(1),
        "an applied file was edited"
    );

    insert(20240103000000, "items", false, "CREATE TABLE items(id);\n");
    let f = only(&db, Some(&m));
    assert_eq!((f.applied, f.failed, f.pending), (2, Some(1), Some(1)));
}

/// golang-migrate's sqlite3 driver: one row, the current version, and its dirty flag.
#[test]
fn golang_migrate_current_version_and_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let m = files(
        dir.path(),
        &[
            ("1_users.up.sql", ""),
            ("1_users.down.sql", ""),
            ("2_orders.up.sql", ""),
            ("2_orders.down.sql", ""),
            ("3_items.up.sql", ""),
        ],
    );
    let db = db_with(
        dir.path(),
        "CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool);
         CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);
         INSERT INTO schema_migrations (version, dirty) VALUES (2, 0);",
    );
    let f = only(&db, Some(&m));
    assert_eq!(f.framework, Framework::GolangMigrate);
    assert_eq!((f.applied, f.failed, f.last_applied), (1, Some(0), None));
    assert_eq!(f.pending, Some(1), "3 is above the current version");
    Connection::open(&db)
        .unwrap()
        .execute_batch("UPDATE schema_migrations SET version = 3, dirty = 1;")
        .unwrap();
    let f = only(&db, Some(&m));
    assert_eq!(
        (f.applied, f.failed),
        (0, Some(1)),
        "a dirty version is a failure"
    );
}

/// goose's table: a version-0 row at creation, rollbacks as `is_applied` 0 rows.
#[test]
fn goose_applied_rows_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = files(
        dir.path(),
        &[
            ("00001_users.sql", ""),
            ("00002_orders.sql", ""),
            ("00003_items.go", ""),
        ],
    );
    let db = db_with(
        dir.path(),
        "CREATE TABLE goose_db_version (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            version_id INTEGER NOT NULL,
            is_applied INTEGER NOT NULL,
            tstamp TIMESTAMP DEFAULT (datetime('now'))
         );
         INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1), (1, 1), (2, 1), (2, 0);",
    );
    let f = only(&db, Some(&m));
    assert_eq!(f.framework, Framework::Goose);
    assert_eq!(
        f.applied, 2,
        "the version-0 row and the rollback row are not migrations"
    );
    assert_eq!(f.failed, None);
    assert_recent(f.last_applied);
    assert_eq!(f.pending, Some(1));
}

/// Flyway's SQLite history table and its CRC32 checksum, computed here by Python's zlib over
/// the file's lines as Flyway reads them.
#[test]
fn flyway_checksums_as_flyway_computes_them() {
    let dir = tempfile::tempdir().unwrap();
    let body = "CREATE TABLE users(id);\r\nCREATE INDEX users_id ON users(id);\r\n";
    let m = files(
        dir.path(),
        &[
            ("V1__users.sql", body),
            ("V1_1__orders.sql", "CREATE TABLE orders(id);\n"),
            ("V2__items.sql", ""),
        ],
    );
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zlib; d = open(sys.argv[1], 'rb').read(); \
             c = zlib.crc32(b''.join(d.splitlines())); print(c - (1 << 32) if c >= 1 << 31 else c)",
        ])
        .arg(m.join("V1__users.sql"))
        .output()
        .unwrap();
    let crc: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let db = db_with(
        dir.path(),
        &format!(
            r#"CREATE TABLE "flyway_schema_history" (
                "installed_rank" INT NOT NULL PRIMARY KEY,
                "version" VARCHAR(50),
                "description" VARCHAR(200) NOT NULL,
                "type" VARCHAR(20) NOT NULL,
                "script" VARCHAR(1000) NOT NULL,
                "checksum" INT,
                "installed_by" VARCHAR(100) NOT NULL,
                "installed_on" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
                "execution_time" INT NOT NULL,
                "success" BOOLEAN NOT NULL
            );
            INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
              VALUES (1, '1', 'users', 'SQL', 'V1__users.sql', {crc}, 'app', 3, 1),
                     (2, '1.1', 'orders', 'SQL', 'V1_1__orders.sql', 12345, 'app', 3, 1);"#
        ),
    );
    let f = only(&db, Some(&m));
    assert_eq!(f.framework, Framework::Flyway);
    assert_eq!((f.applied, f.failed), (2, Some(0)));
    assert_recent(f.last_applied);
    assert_eq!(f.pending, Some(1), "V2 is not applied; V1_1 is version 1.1");
    assert_eq!(
        f.drifted,
        Some(1),
        "V1_1's recorded checksum is not its file's"
    );
}

/// Prisma's table: a started but unfinished migration is failed, a rolled-back one is
/// neither; its checksum is the hex SHA-256 of `migration.sql`.
#[test]
fn prisma_failed_and_rolled_back_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "CREATE TABLE users(id);\n";
    let m = files(
        dir.path(),
        &[
            ("20240101_init/migration.sql", sql),
            (
                "20240102_orders/migration.sql",
                "CREATE TABLE orders(id);\n",
            ),
            ("migration_lock.toml", "provider = \"sqlite\"\n"),
        ],
    );
    let sum = sha2::Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let db = db_with(
        dir.path(),
        &format!(
            r#"CREATE TABLE "_prisma_migrations" (
                "id" TEXT PRIMARY KEY NOT NULL,
                "checksum" TEXT NOT NULL,
                "finished_at" DATETIME,
                "migration_name" TEXT NOT NULL,
                "logs" TEXT,
                "rolled_back_at" DATETIME,
                "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
                "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
            );
            INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
              VALUES ('a', '{sum}', 1700000000000, '20240101_init', 1700000000000, 1),
                     ('b', 'x', NULL, '20240102_orders', 1700000100000, 0);
            INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, rolled_back_at, started_at)
              VALUES ('c', 'y', NULL, '20240102_orders', 1700000050000, 1700000000000);"#
        ),
    );
    let f = only(&db, Some(&m));
    assert_eq!(f.framework, Framework::Prisma);
    assert_eq!((f.applied, f.failed), (1, Some(1)));
    assert_eq!(
        f.last_applied,
        Some(1_700_000_000.0),
        "milliseconds, as Prisma stores them"
    );
    assert_eq!((f.pending, f.drifted), (Some(1), Some(0)));
}

/// The tools whose tables only list what was applied: Diesel, Knex, Sequelize, EF Core, and
/// Rails or dbmate's `schema_migrations(version)`.
#[test]
fn name_only_tables_count_applied_and_pending() {
    struct Case {
        ddl: &'static str,
        files: &'static [(&'static str, &'static str)],
        framework: Framework,
        applied: u64,
        timed: bool,
        pending: u64,
    }
    let cases = [
        Case {
            ddl: "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
                  INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000');",
            files: &[("2024-01-01-000000_users/up.sql", ""), ("2024-01-02-000000_orders/up.sql", "")],
            framework: Framework::Diesel,
            applied: 1,
            timed: true,
            pending: 1,
        },
        Case {
            ddl: "CREATE TABLE knex_migrations (id integer not null primary key autoincrement, name varchar(255), batch integer, migration_time datetime);
                  INSERT INTO knex_migrations (name, batch, migration_time) VALUES ('20240101_users.js', 1, CAST(strftime('%s','now') AS INTEGER) * 1000);",
            files: &[("20240101_users.js", ""), ("20240102_orders.js", "")],
            framework: Framework::Knex,
            applied: 1,
            timed: true,
            pending: 1,
        },
        Case {
            ddl: "CREATE TABLE IF NOT EXISTS `SequelizeMeta` (`name` VARCHAR(255) NOT NULL UNIQUE PRIMARY KEY);
                  INSERT INTO SequelizeMeta VALUES ('20240101-users.js'), ('20240102-orders.js');",
            files: &[("20240101-users.js", ""), ("20240102-orders.js", ""), ("20240103-items.js", "")],
            framework: Framework::Sequelize,
            applied: 2,
            timed: false,
            pending: 1,
        },
        Case {
            ddl: r#"CREATE TABLE "__EFMigrationsHistory" ("MigrationId" TEXT NOT NULL CONSTRAINT "PK___EFMigrationsHistory" PRIMARY KEY, "ProductVersion" TEXT NOT NULL);
                  INSERT INTO "__EFMigrationsHistory" VALUES ('20240101000000_Initial', '8.0.0');"#,
            files: &[
                ("20240101000000_Initial.cs", ""),
                ("20240101000000_Initial.Designer.cs", ""),
                ("20240102000000_Orders.cs", ""),
                ("20240102000000_Orders.Designer.cs", ""),
                ("AppDbContextModelSnapshot.cs", ""),
            ],
            framework: Framework::EfCore,
            applied: 1,
            timed: false,
            pending: 1,
        },
        Case {
            ddl: "CREATE TABLE schema_migrations (version varchar(128) primary key);
                  INSERT INTO schema_migrations VALUES ('20240101000000');",
            files: &[("20240101000000_users.sql", ""), ("20240102000000_orders.sql", "")],
            framework: Framework::SchemaMigrations,
            applied: 1,
            timed: false,
            pending: 1,
        },
    ];
    for c in cases {
        let dir = tempfile::tempdir().unwrap();
        let m = files(dir.path(), c.files);
        let db = db_with(dir.path(), c.ddl);
        let f = only(&db, Some(&m));
        let what = c.framework.as_str();
        assert_eq!(f.framework, c.framework, "{what}");
        assert_eq!((f.applied, f.failed), (c.applied, None), "{what}");
        if c.timed {
            assert_recent(f.last_applied);
        } else {
            assert_eq!(f.last_applied, None, "{what}");
        }
        assert_eq!(f.pending, Some(c.pending), "{what}");
        assert_eq!(f.drifted, None, "{what}: no checksum this recomputes");
    }
}

/// Python's own SipHash-1-3 with zero keys: its `hash()` of bytes with `PYTHONHASHSEED=0`.
fn python_siphash13(data: &[u8]) -> u64 {
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("python3")
        .env("PYTHONHASHSEED", "0")
        .args([
            "-c",
            "import sys; assert sys.hash_info.algorithm == 'siphash13'; \
             print(hash(bytes.fromhex(sys.argv[1])) & (2**64 - 1))",
            &hex,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// refinery's checksum, SipHash-1-3 with zero keys over the Rust `Hash` encoding of name,
/// version and SQL, against Python's SipHash-1-3 over inputs of every length around the
/// 8-byte blocks; then drift on refinery's table.
#[test]
fn refinery_checksums_and_drift() {
    for len in 0..20 {
        let sql = "x".repeat(len);
        let mut encoded = b"users\xff".to_vec();
        encoded.extend_from_slice(&7i32.to_le_bytes());
        encoded.extend_from_slice(sql.as_bytes());
        encoded.push(0xff);
        assert_eq!(
            migration_files::refinery_checksum("users", 7, sql.as_bytes()),
            python_siphash13(&encoded),
            "sql of {len} bytes"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = ("CREATE TABLE users(id);\n", "CREATE TABLE orders(id);\n");
    let m = files(
        dir.path(),
        &[("V1__users.sql", one), ("V2__orders.sql", two)],
    );
    let sum = |name: &str, v: i32, sql: &str| {
        migration_files::refinery_checksum(name, v, sql.as_bytes()).to_string()
    };
    let db = db_with(
        dir.path(),
        &format!(
            "CREATE TABLE IF NOT EXISTS refinery_schema_history(version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255));
             INSERT INTO refinery_schema_history VALUES
               (1, 'users', '2023-11-14T22:13:20+00:00', '{}'),
               (2, 'orders', '2023-11-14T22:13:20+00:00', '{}');",
            sum("users", 1, one),
            sum("orders", 2, two),
        ),
    );
    let f = only(&db, Some(&m));
    assert_eq!(f.framework, Framework::Refinery);
    assert_eq!((f.applied, f.pending, f.drifted), (2, Some(0), Some(0)));
    assert_eq!(f.last_applied, Some(1_700_000_000.0));
    std::fs::write(
        m.join("V2__orders.sql"),
        "CREATE TABLE orders(id, total);\n",
    )
    .unwrap();
    assert_eq!(only(&db, Some(&m)).drifted, Some(1));
}

/// The seeds' own `schema_migrations(version, checksum)`: hex SHA-256 of the file.
#[test]
fn schema_migrations_with_a_sha256_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let body = "CREATE TABLE users(id);\n";
    let m = files(dir.path(), &[("001_users.sql", body)]);
    let sum: String = sha2::Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let db = db_with(
        dir.path(),
        &format!(
            "CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, checksum TEXT, applied_at INTEGER);
             INSERT INTO schema_migrations VALUES (1, '{sum}', 1700000000);"
        ),
    );
    assert_eq!(only(&db, Some(&m)).drifted, Some(0));
    std::fs::write(m.join("001_users.sql"), "CREATE TABLE users(id, email);\n").unwrap();
    let f = only(&db, Some(&m));
    assert_eq!(
        (f.framework, f.drifted, f.pending),
        (Framework::SchemaMigrations, Some(1), Some(0))
    );
}

/// Several tools' tables in one database are each read; a configured table alone, its
/// framework from its name or `custom`; detection is redone only when the schema changes.
#[test]
fn detection_configuration_and_the_schema_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with(
        dir.path(),
        "CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT, applied TEXT);
         INSERT INTO django_migrations (app, name, applied) VALUES ('auth', '0001_initial', '2023-11-14 22:13:20');
         CREATE TABLE knex_migrations (id integer primary key, name varchar(255), batch integer, migration_time datetime);
         CREATE TABLE deploys(version, applied_at);
         INSERT INTO deploys VALUES (1, 1700000000);",
    );
    let conn = Connection::open(&db).unwrap();
    let auto = Migrations::default();
    let s = survey(&conn, &auto, None);
    let frameworks: Vec<Framework> = s.figures.iter().map(|f| f.framework).collect();
    assert_eq!(frameworks, vec![Framework::Django, Framework::Knex]);
    assert_eq!(s.figures[0].last_applied, Some(1_700_000_000.0));
    assert_eq!(
        s.figures[1].applied, 0,
        "an empty table is 0 applied, not absent"
    );

    // At the same schema cookie the tables found last time are read, not looked for again
    // (a made-up earlier finding shows it); a schema change makes it look again.
    let (cookie, _) = s.tables.clone().unwrap();
    let earlier = Some((cookie, vec!["knex_migrations".to_string()]));
    conn.execute_batch("PRAGMA user_version = 3;").unwrap();
    let again = survey(&conn, &auto, earlier.clone());
    assert_eq!(again.figures.len(), 1, "{:?}", again.figures);
    conn.execute_batch("CREATE TABLE _sqlx_migrations(version BIGINT PRIMARY KEY, description TEXT, installed_on TIMESTAMP, success BOOLEAN, checksum BLOB, execution_time BIGINT);")
        .unwrap();
    let changed = survey(&conn, &auto, earlier);
    assert_eq!(
        changed.figures.len(),
        3,
        "a new table is found after a schema change"
    );

    // A migrations.dir with several tables and none configured belongs to none of them.
    let with_dir = Migrations {
        table: None,
        dir: Some(dir.path().to_path_buf()),
    };
    let s = survey(&conn, &with_dir, None);
    let error = s.error.unwrap_or_default();
    assert!(error.contains("several migrations tables"), "{error}");
    assert_eq!(s.figures.len(), 3, "the tables are still read");
    assert!(s.figures.iter().all(|f| f.pending.is_none()));

    let custom = Migrations {
        table: Some("deploys".into()),
        dir: None,
    };
    let s = survey(&conn, &custom, None);
    assert_eq!(s.figures.len(), 1);
    assert_eq!(
        s.tables, None,
        "a configured table is not remembered as found: without it, the next read looks"
    );
    assert_eq!(
        (s.figures[0].framework, s.figures[0].applied),
        (Framework::Custom, 1)
    );
    let named = Migrations {
        table: Some("knex_migrations".into()),
        dir: None,
    };
    assert_eq!(
        survey(&conn, &named, None).figures[0].framework,
        Framework::Knex
    );
    assert_eq!(
        migrations::find_tables(&conn).unwrap(),
        vec!["django_migrations", "knex_migrations", "_sqlx_migrations"]
    );
}
