//! `--demo`: a demo database with a background writer, so every metric has something to show.
//!
//! The demo is a small shop: customers, orders, order items and an event log, in WAL mode, with
//! the load of a healthy application: a few orders a second, committed with
//! `synchronous = NORMAL` (as WAL applications usually run), and events older than ten minutes
//! trimmed every half minute, so the WAL, the freelist and the utilization move while staying
//! inside the default thresholds. The writer's `wal_autocheckpoint` keeps the WAL under
//! `wal_checkpoint_bytes` (1 MiB), and `journal_size_limit` brings it back after a burst. A demo
//! database is healthy: status `healthy`, no recommendation, no alert.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::os::unix::fs::PermissionsExt;

use anyhow::Context;
use rusqlite::Connection;
use tracing::warn;

/// A running demo; dropping it stops the writer (and removes a temporary directory).
pub struct Demo {
    /// Directory holding the demo files.
    pub dir: PathBuf,
    /// The demo database.
    pub database: PathBuf,
    /// Directory for the demo's backups.
    pub backup_dir: PathBuf,
    /// The control API token file (a random token, mode 0600).
    pub token_file: PathBuf,
    /// The demo application's migration files (`migrations.dir`).
    pub migrations_dir: PathBuf,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

const JOURNAL: &str = "
PRAGMA journal_mode = WAL;
PRAGMA journal_size_limit = 524288;
";

/// The indexes, on the tables [`MIGRATIONS`] create.
const SCHEMA: &str = "
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders(customer_id);
CREATE INDEX IF NOT EXISTS orders_by_time ON orders(created_at);
CREATE INDEX IF NOT EXISTS items_by_order ON order_items(order_id);
CREATE INDEX IF NOT EXISTS events_by_time ON events(created_at);
PRAGMA user_version = 3;
";

/// The demo application migrates its schema as sqlx does: a table `_sqlx_migrations` with the
/// SHA-384 of each file in `migrations/`. The first three are applied at start (their tables
/// are the ones above, so an older demo directory is migrated in place); the fourth is
/// "deployed" by the writer two minutes later, so `sqlite_migrations_pending` shows 1 and
/// then 0.
const MIGRATIONS: [(i64, &str, &str); 4] = [
    (
        20240101000000,
        "customers_and_orders",
        "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);\nCREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), total_cents INTEGER NOT NULL, created_at REAL NOT NULL);\n",
    ),
    (
        20240102000000,
        "order_items",
        "CREATE TABLE IF NOT EXISTS order_items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), sku TEXT NOT NULL, quantity INTEGER NOT NULL);\n",
    ),
    (
        20240103000000,
        "event_log",
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload BLOB, created_at REAL NOT NULL);\n",
    ),
    (
        20240104000000,
        "refunds",
        "CREATE TABLE IF NOT EXISTS refunds (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), cents INTEGER NOT NULL, created_at REAL NOT NULL);\n",
    ),
];

/// The tables the demo's configuration requires (`schema.required_tables`).
pub const REQUIRED_TABLES: [&str; 3] = ["customers", "orders", "order_items"];

/// Writes the migration files to `dir` (restoring any edited one).
fn write_migration_files(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (version, name, sql) in MIGRATIONS {
        std::fs::write(dir.join(format!("{version}_{name}.sql")), sql)?;
    }
    Ok(())
}

/// Applies migration `i` of [`MIGRATIONS`] unless it is recorded, the way sqlx does: its SQL
/// and its row in one transaction.
fn migrate(conn: &Connection, i: usize) -> rusqlite::Result<()> {
    use sha2::Digest;
    let (version, name, sql) = MIGRATIONS[i];
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
    )?;
    let applied: bool = conn.query_row(
        "SELECT count(*) > 0 FROM _sqlx_migrations WHERE version = ?1",
        [version],
        |r| r.get(0),
    )?;
    if applied {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = conn.execute_batch(sql).and_then(|()| {
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, TRUE, ?3, 1)",
            rusqlite::params![version, name.replace('_', " "), sha2::Sha384::digest(sql.as_bytes()).to_vec()],
        )
    });
    conn.execute_batch(if done.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    done.map(drop)
}

impl Demo {
    /// Creates (or reuses) the demo database in `dir` (a new temporary directory if `None`) and
    /// starts its writer.
    pub fn start(dir: Option<&Path>) -> anyhow::Result<Demo> {
        let (dir, temp) = match dir {
            Some(d) => (d.to_path_buf(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("sqlite_exporter_demo")
                    .tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating demo directory {}", dir.display()))?;
        let database = dir.join("demo.db");
        let backup_dir = dir.join("backups");
        // Private like every backup directory the exporter creates (backups hold all the data),
        // also when a demo directory of an older version is reused.
        crate::backup_dir::ensure_dir(&backup_dir)?;
        std::fs::set_permissions(&backup_dir, std::fs::Permissions::from_mode(0o700))?;
        let token_file = dir.join("token");
        if !token_file.exists() {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let token: String = (0..32)
                .map(|_| format!("{:x}", rand::random::<u8>() % 16))
                .collect();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&token_file)?;
            writeln!(f, "{token}")?;
        }
        let conn = Connection::open(&database)
            .with_context(|| format!("creating {}", database.display()))?;
        let migrations_dir = dir.join("migrations");
        write_migration_files(&migrations_dir)
            .with_context(|| format!("writing {}", migrations_dir.display()))?;
        conn.execute_batch(JOURNAL)
            .context("setting the demo's journal mode")?;
        for i in 0..MIGRATIONS.len() - 1 {
            migrate(&conn, i).context("migrating the demo schema")?;
        }
        conn.execute_batch(SCHEMA)
            .context("creating the demo schema")?;
        // The migrations table of earlier demo versions.
        conn.execute_batch("DROP TABLE IF EXISTS schema_migrations;")?;
        seed(&conn)?;
        drop(conn);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, path) = (stop.clone(), database.clone());
            std::thread::Builder::new()
                .name("demo-writer".into())
                .spawn(move || {
                    if let Err(e) = write_loop(&path, &stop) {
                        warn!(error = %e, "demo writer stopped");
                    }
                })?
        };
        Ok(Demo {
            dir,
            database,
            backup_dir,
            token_file,
            migrations_dir,
            stop,
            writer: Some(writer),
            _temp: temp,
        })
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn seed(conn: &Connection) -> rusqlite::Result<()> {
    let n: i64 = conn.query_row("SELECT count(*) FROM customers", [], |r| r.get(0))?;
    if n > 0 {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN;
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500)
         INSERT INTO customers(name, email, created_at) SELECT 'customer ' || i, 'c' || i || '@example.com', unixepoch('subsec') FROM c;
         COMMIT;",
    )
}

/// How often the writer commits an order.
const WRITE_EVERY: Duration = Duration::from_millis(250);

/// Inserts an order with items and a few events every [`WRITE_EVERY`]; every 30 s deletes the
/// events older than ten minutes, which leaves a few free pages behind for the next inserts.
fn write_loop(path: &Path, stop: &AtomicBool) -> rusqlite::Result<()> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // 200 pages of 4 KiB: the WAL restarts well before the 1 MiB checkpoint threshold.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 200; PRAGMA journal_size_limit = 524288;",
    )?;
    let mut tick: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick += 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             INSERT INTO orders(customer_id, total_cents, created_at) VALUES ({c}, {t}, unixepoch('subsec'));
             INSERT INTO order_items(order_id, sku, quantity) VALUES (last_insert_rowid(), 'sku-{s}', {q});
             INSERT INTO events(kind, payload, created_at) SELECT 'page_view', randomblob(400), unixepoch('subsec') FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3);
             COMMIT;",
            c = tick % 500 + 1,
            t = (tick * 7919) % 100_000,
            s = tick % 97,
            q = tick % 5 + 1,
        ))?;
        if tick % 120 == 0 {
            conn.execute_batch("DELETE FROM events WHERE created_at < unixepoch('subsec') - 600;")?;
        }
        // Two minutes in, the last migration is deployed.
        if tick == 480 {
            migrate(&conn, MIGRATIONS.len() - 1)?;
        }
        std::thread::sleep(WRITE_EVERY);
    }
    Ok(())
}
