//! The HTTP edge under abuse, over real sockets to the real binary: half-sent requests and
//! silent connections are closed after the header-read timeout, idle keep-alive connections
//! after the idle timeout, connections past the limit wait, running out of descriptors costs
//! neither CPU nor log, SIGTERM completes while clients hold half-sent requests, a body
//! declared too large is refused before it is sent, and an oversized header is refused.

#[path = "util/exporter.rs"]
mod exporter;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use exporter::{app_db, build_db, raw, Exporter, Setup};

/// A request cut off before the blank line that ends its head.
const HALF_SENT: &str = "GET /metrics HTTP/1.1\r\nHost: x\r\n";

/// An exporter watching one small database, with `flags`.
fn exporter(flags: &[&str]) -> (tempfile::TempDir, Exporter) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    build_db(&db, "CREATE TABLE t(x);");
    let mut args = vec![db.to_str().unwrap()];
    args.extend_from_slice(flags);
    let e = Exporter::start(&args);
    (dir, e)
}

/// `n` connections to `addr`, each having sent `bytes`.
fn hold(addr: &str, n: usize, bytes: &str) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            s.write_all(bytes.as_bytes()).unwrap();
            s
        })
        .collect()
}

/// How long until the server closes `s` (reads end or fail with a reset), waiting at most
/// `limit`; `None` if it is still open then. Response bytes, if any, are skipped.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        s.set_read_timeout(Some(limit - start.elapsed() + Duration::from_millis(1)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Sends a keep-alive GET of `/-/healthy` on `s` and reads its whole response.
fn healthy_on(s: &mut TcpStream) {
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"Healthy\n") {
        let n = s
            .read(&mut buf)
            .expect("a response on the kept-alive connection");
        assert!(
            n > 0,
            "closed before the response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
}

/// GET `/metrics` on a fresh connection within `limit`; returns how long it took.
fn metrics_within(e: &Exporter, limit: Duration) -> Duration {
    let start = Instant::now();
    let url = format!("http://{}/metrics", e.addr);
    let r = ureq::get(&url).timeout(limit).call();
    let took = start.elapsed();
    match r {
        Ok(r) => assert_eq!(r.status(), 200),
        Err(err) => panic!(
            "GET /metrics not answered within {limit:?} ({took:?}): {err}; log:\n{}",
            e.log_text()
        ),
    }
    took
}

#[test]
fn with_250_half_sent_requests_held_a_fresh_client_gets_metrics_within_a_second() {
    let (_dir, e) = exporter(&[]);
    let held = hold(&e.addr, 250, HALF_SENT);
    std::thread::sleep(Duration::from_millis(300));
    let took = metrics_within(&e, Duration::from_secs(1));
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(held);
}

#[test]
fn half_sent_requests_and_silent_connections_are_closed_after_the_header_read_timeout() {
    let (_dir, e) = exporter(&["--web.header-read-timeout=1s", "--web.idle-timeout=30s"]);
    // Nothing sent; fewer bytes than HTTP/2 detection waits for; a head cut short.
    for bytes in ["", "GET / HTTP/1.1\r\n", HALF_SENT] {
        let mut s = hold(&e.addr, 1, bytes).remove(0);
        let closed = closed_within(&mut s, Duration::from_secs(5));
        assert!(
            closed.is_some_and(|t| t >= Duration::from_millis(800) && t < Duration::from_secs(3)),
            "{bytes:?}: closed after {closed:?}, want about 1 s"
        );
    }
    // A head trickled a byte at a time is timed from its first byte, not from the last.
    let mut s = TcpStream::connect(&e.addr).unwrap();
    let start = Instant::now();
    let mut refused = false;
    let trickle = format!("{HALF_SENT}X-Slow: {}", "a".repeat(30));
    for b in trickle.bytes() {
        if s.write_all(&[b]).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed = refused
        .then(|| start.elapsed())
        .or_else(|| closed_within(&mut s, Duration::from_millis(1)).map(|_| start.elapsed()));
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(3)),
        "a trickled head still open after {:?}",
        start.elapsed()
    );
}

#[test]
fn a_keep_alive_connection_outlives_the_header_read_timeout_and_closes_after_the_idle_timeout() {
    let (_dir, e) = exporter(&["--web.header-read-timeout=1s", "--web.idle-timeout=3s"]);
    let mut s = TcpStream::connect(&e.addr).unwrap();
    healthy_on(&mut s);
    // Idle between requests for longer than the header-read timeout: still open.
    std::thread::sleep(Duration::from_millis(2000));
    healthy_on(&mut s);
    let closed = closed_within(&mut s, Duration::from_secs(6));
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(2500) && t < Duration::from_secs(5)),
        "idle connection closed after {closed:?}, want about 3 s"
    );
}

#[test]
fn connections_past_the_limit_wait_until_one_closes() {
    let (_dir, e) = exporter(&["--web.max-connections=2", "--web.header-read-timeout=1m"]);
    let mut held = hold(&e.addr, 2, "");
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(&e.addr).unwrap();
    third
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 256];
    match third.read(&mut buf) {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a third connection was served past --web.max-connections=2: {other:?}"),
    }
    drop(held.remove(0));
    third
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut got = Vec::new();
    third.read_to_end(&mut got).unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

/// util-linux `prlimit`, or a failure saying how to get it.
fn prlimit() -> &'static str {
    match std::process::Command::new("prlimit")
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => "prlimit",
        Ok(o) => panic!("`prlimit --version` failed: {o:?}"),
        Err(e) => panic!(
            "`prlimit` (util-linux) is needed for this test and could not be run ({e}); \
             it is in the Debian package util-linux (apt-get install util-linux)"
        ),
    }
}

/// CPU time (user + system) the process has used, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses: state is the first, utime the
    // 12th and stime the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[test]
fn out_of_descriptors_the_exporter_idles_logs_little_and_serves_again_once_they_are_freed() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let header_read = Duration::from_secs(10);
    let e = Exporter::start_under(
        &[prlimit(), "--nofile=200", "--"],
        &[db.to_str().unwrap(), "--web.header-read-timeout=10s"],
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", e.pid())).unwrap();
    assert_eq!(
        comm.trim(),
        "sqlite_exporter",
        "prlimit must exec the exporter"
    );
    let held = hold(&e.addr, 250, "");
    e.wait_log(&["accept failed"]);
    let (cpu, log, start) = (cpu_time(e.pid()), e.log_bytes(), Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let used = cpu_time(e.pid()) - cpu;
    let share = used.as_secs_f64() / start.elapsed().as_secs_f64();
    let logged = e.log_bytes() - log;
    assert!(
        share < 0.2,
        "{used:?} of CPU in {:?} ({:.0}% of a core) while out of descriptors",
        start.elapsed(),
        share * 100.0
    );
    assert!(
        logged < 100_000,
        "{logged} bytes logged in {:?} while out of descriptors",
        start.elapsed()
    );
    drop(held);
    let took = metrics_within(&e, header_read);
    assert!(took < header_read, "{took:?}");
}

#[test]
fn sigterm_with_half_sent_requests_held_exits_0_within_the_grace_period() {
    // The header-read timeout is far away: only shutdown's own grace can close them.
    let (_dir, mut e) = exporter(&["--web.header-read-timeout=5m", "--web.idle-timeout=5m"]);
    let mut held = hold(&e.addr, 10, HALF_SENT);
    held.extend(hold(&e.addr, 10, "GET /"));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    e.signal(libc::SIGTERM);
    // The grace period of connections is 10 s; the process needs a moment after it.
    let status = e.wait_exit(Duration::from_secs(13));
    assert!(
        status.success(),
        "{status:?} after {:?}; log:\n{}",
        start.elapsed(),
        e.log_text()
    );
    for s in &mut held {
        assert!(closed_within(s, Duration::from_secs(1)).is_some());
    }
}

#[test]
fn a_body_trickled_or_never_sent_is_answered_408_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let e = s.start(&["--web.header-read-timeout=1s", "--web.max-connections=2"]);
    let head = format!(
        "POST /api/v1/databases/app/checkpoint HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 400\r\n\r\n",
        s.token
    );
    // One client sends the head and stops; the other trickles a byte every 200 ms, which
    // would take 80 s. Both hold one of the two connections the exporter may have open.
    let mut stalled = TcpStream::connect(&e.addr).unwrap();
    stalled.write_all(head.as_bytes()).unwrap();
    let mut trickled = TcpStream::connect(&e.addr).unwrap();
    trickled.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    let trickle = std::thread::spawn(move || {
        let mut answer = Vec::new();
        for _ in 0..400 {
            if trickled.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            trickled.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 4096];
            match trickled.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            trickled.set_nonblocking(false).unwrap();
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            start.elapsed(),
        )
    });
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    let took = start.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "stalled body: {answer:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "stalled body answered after {took:?}"
    );
    let (answer, took) = trickle.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "trickled body: {answer:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "trickled body answered after {took:?}"
    );
    // Both connections are free again.
    metrics_within(&e, Duration::from_secs(1));
}

#[test]
fn a_body_declared_too_large_is_refused_at_once_with_the_api_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = app_db(dir.path());
    let s = Setup::new(dir, &[("app", &db)], "", true);
    let e = s.start(&[]);
    let start = Instant::now();
    // The head only: a server waiting for the body would wait forever.
    let r = raw(
        &e.addr,
        &format!(
            "POST /api/v1/databases/app/backup HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: 99999999999\r\nConnection: close\r\n\r\n",
            s.token
        ),
    );
    let took = start.elapsed();
    assert_eq!(r.status, 413, "{}", r.head);
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("larger than"), "{v}");
}

#[test]
fn an_oversized_request_header_is_refused_and_a_large_one_accepted() {
    let (_dir, e) = exporter(&[]);
    let request = |header_bytes: usize| {
        format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(header_bytes)
        )
    };
    assert_eq!(raw(&e.addr, &request(16 * 1024)).status, 200);
    let r = raw(&e.addr, &request(200 * 1024));
    assert_eq!(r.status, 431, "{}", r.head);
}
