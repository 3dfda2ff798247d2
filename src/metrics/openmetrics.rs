//! The OpenMetrics form of the exposition, for scrapers that ask for it
//! (`Accept: application/openmetrics-text`).
//!
//! The body is the text format rewritten family by family, because the two differ only in
//! metadata: a counter family is named without its samples' `_total` suffix, a gauge named
//! `…_info` whose value is always 1 is an `info` family named without the suffix, a family
//! whose name ends in a unit (`_seconds`, `_bytes`, `_ratio`) declares it with `# UNIT`, HELP
//! escapes double quotes, and the body ends with `# EOF`. Sample lines are the same in both.
//! Written by hand because the `prometheus` crate encodes only the text format, and the series
//! here are rendered without it (see `text.rs`). The `_created` samples of the exporter's own
//! counters and histograms (when each started from zero) are rendered with the series they
//! belong to, for an OpenMetrics body only, and pass through here like any sample; the
//! process counters (from the `prometheus` crate) and the counters of custom queries (whose
//! values come from the database) have none. Which format a client gets is decided by the
//! HTTP layer.

/// Content-Type of the OpenMetrics exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Units a family name may end in, declared with `# UNIT`.
const UNITS: [&str; 3] = ["seconds", "bytes", "ratio"];

/// `text` (the text exposition format, HELP before TYPE in each family) in OpenMetrics.
pub fn from_text(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len() + text.len() / 50 + 8);
    let mut help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, doc));
            continue;
        }
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
        let (family, kind) = match kind {
            "counter" => (name.strip_suffix("_total").unwrap_or(name), "counter"),
            "gauge" if name.ends_with("_info") => (name.strip_suffix("_info").unwrap(), "info"),
            "untyped" => (name, "unknown"),
            other => (name, other),
        };
        out.push_str("# TYPE ");
        out.push_str(family);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
        if let Some(unit) = UNITS
            .iter()
            .find(|u| family.strip_suffix(*u).is_some_and(|f| f.ends_with('_')))
        {
            out.push_str("# UNIT ");
            out.push_str(family);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
        if let Some((_, doc)) = help.take().filter(|(n, _)| *n == name) {
            out.push_str("# HELP ");
            out.push_str(family);
            out.push(' ');
            // The text format escapes `\` and new lines in HELP; OpenMetrics also `"`.
            out.push_str(&doc.replace('"', "\\\""));
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_renamed_typed_and_given_units() {
        let text = "# HELP sqlite_backups_total Backups \"taken\".\n\
                    # TYPE sqlite_backups_total counter\n\
                    sqlite_backups_total{database=\"a\"} 3\n\
                    # HELP sqlite_database_info Static facts.\n\
                    # TYPE sqlite_database_info gauge\n\
                    sqlite_database_info{database=\"a\",path=\"/x\"} 1\n\
                    # HELP sqlite_wal_size_bytes WAL size.\n\
                    # TYPE sqlite_wal_size_bytes gauge\n\
                    sqlite_wal_size_bytes{database=\"a\"} 0\n\
                    # HELP sqlite_query_duration_seconds Probe.\n\
                    # TYPE sqlite_query_duration_seconds histogram\n\
                    sqlite_query_duration_seconds_bucket{database=\"a\",le=\"+Inf\"} 1\n\
                    # HELP process_cpu_seconds_total CPU.\n\
                    # TYPE process_cpu_seconds_total counter\n\
                    process_cpu_seconds_total 0.5\n\
                    # HELP sqlite_pages Pages.\n\
                    # TYPE sqlite_pages gauge\n\
                    sqlite_pages{database=\"a\"} 2\n";
        let got = String::from_utf8(from_text(text.as_bytes())).unwrap();
        assert_eq!(
            got,
            "# TYPE sqlite_backups counter\n\
             # HELP sqlite_backups Backups \\\"taken\\\".\n\
             sqlite_backups_total{database=\"a\"} 3\n\
             # TYPE sqlite_database info\n\
             # HELP sqlite_database Static facts.\n\
             sqlite_database_info{database=\"a\",path=\"/x\"} 1\n\
             # TYPE sqlite_wal_size_bytes gauge\n\
             # UNIT sqlite_wal_size_bytes bytes\n\
             # HELP sqlite_wal_size_bytes WAL size.\n\
             sqlite_wal_size_bytes{database=\"a\"} 0\n\
             # TYPE sqlite_query_duration_seconds histogram\n\
             # UNIT sqlite_query_duration_seconds seconds\n\
             # HELP sqlite_query_duration_seconds Probe.\n\
             sqlite_query_duration_seconds_bucket{database=\"a\",le=\"+Inf\"} 1\n\
             # TYPE process_cpu_seconds counter\n\
             # UNIT process_cpu_seconds seconds\n\
             # HELP process_cpu_seconds CPU.\n\
             process_cpu_seconds_total 0.5\n\
             # TYPE sqlite_pages gauge\n\
             # HELP sqlite_pages Pages.\n\
             sqlite_pages{database=\"a\"} 2\n\
             # EOF\n"
        );
    }
}
