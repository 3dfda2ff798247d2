//! The per-database part of the exposition, rendered once and kept until that database's
//! report or events change.
//!
//! Written by hand rather than through the `prometheus` crate's registry: a registry is
//! rebuilt and re-encoded whole, so a scrape of ten thousand unchanged databases would
//! re-hash and re-format every one of their series. Here each database's series are kept as
//! ready text, grouped by family, and a scrape only concatenates them. The output is the
//! same text format the crate writes (labels in name order, series sorted by their label
//! values, `f64` printed as Rust prints it), so the two can be mixed in one body.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::collect::series::{Gauge, Series};

/// One series (or, for a histogram, one label set's buckets, sum and count): its sort key —
/// label values in label-name order — and its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    key: String,
    text: String,
}

/// One family's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Metric name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// `gauge`, `counter` or `histogram`.
    pub kind: &'static str,
    /// Whether `database` sorts first among its label names, so that one database's series
    /// and the next database's never interleave.
    pub database_first: bool,
}

/// A database's series, by family name.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DatabaseText {
    families: BTreeMap<&'static str, (Meta, Vec<Entry>)>,
}

impl DatabaseText {
    /// Adds one sample of `meta` with `labels` (name, value pairs, in any order).
    pub fn sample(&mut self, meta: Meta, labels: &[(&str, &str)], suffix: &str, value: f64) {
        let (key, text) = line(meta.name, suffix, labels, None, value);
        self.push(meta, key, text);
    }

    /// Adds one histogram label set: the observations per bucket of `bounds` (each counted
    /// once, in the first bucket that holds it), sum and count.
    pub fn histogram(
        &mut self,
        meta: Meta,
        labels: &[(&str, &str)],
        bounds: &[f64],
        buckets: &[u64],
        sum: f64,
        count: u64,
    ) {
        let mut text = String::new();
        let mut cumulative = 0;
        for (bound, n) in bounds.iter().zip(buckets) {
            cumulative += n;
            let le = bound.to_string();
            let (_, t) = line(
                meta.name,
                "_bucket",
                labels,
                Some(("le", &le)),
                cumulative as f64,
            );
            text.push_str(&t);
        }
        let (_, t) = line(
            meta.name,
            "_bucket",
            labels,
            Some(("le", "+Inf")),
            count as f64,
        );
        text.push_str(&t);
        let (_, t) = line(meta.name, "_sum", labels, None, sum);
        text.push_str(&t);
        let (_, t) = line(meta.name, "_count", labels, None, count as f64);
        text.push_str(&t);
        self.push(meta, sort_key(labels), text);
    }

    fn push(&mut self, meta: Meta, key: String, text: String) {
        let (_, entries) = self
            .families
            .entry(meta.name)
            .or_insert_with(|| (meta, Vec::new()));
        entries.push(Entry { key, text });
    }

    /// Sorts each family's entries (done once, when the text is made).
    pub fn finish(mut self) -> Self {
        for (_, entries) in self.families.values_mut() {
            entries.sort_by(|a, b| a.key.cmp(&b.key));
        }
        self
    }
}

/// A [`Series`] sink writing gauges into a [`DatabaseText`].
pub struct GaugeText<'a>(pub &'a mut DatabaseText);

impl Series for GaugeText<'_> {
    fn set(&mut self, gauge: &'static Gauge, labels: &[&str], value: f64) {
        let pairs: Vec<(&str, &str)> = gauge
            .labels
            .iter()
            .copied()
            .zip(labels.iter().copied())
            .collect();
        self.0.sample(gauge_meta(gauge), &pairs, "", value);
    }
}

/// The metadata of a gauge family.
pub fn gauge_meta(g: &'static Gauge) -> Meta {
    Meta {
        name: g.name,
        help: g.help,
        kind: "gauge",
        database_first: database_first(g.labels),
    }
}

/// Whether `database` is the first of `labels` in name order.
pub fn database_first(labels: &[&str]) -> bool {
    labels.iter().min() == Some(&"database")
}

/// Label values in label-name order, separated by a byte that sorts before any text, so that
/// entries sort as the `prometheus` crate sorts series.
fn sort_key(labels: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut key = String::new();
    for (_, v) in sorted {
        key.push_str(v);
        key.push('\u{1}');
    }
    key
}

/// One sample line and its sort key.
fn line(
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: f64,
) -> (String, String) {
    let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::with_capacity(64);
    text.push_str(name);
    text.push_str(suffix);
    let mut sep = '{';
    let mut any = false;
    for (k, v) in sorted.iter().map(|p| (p.0, p.1)).chain(extra) {
        text.push(sep);
        sep = ',';
        any = true;
        text.push_str(k);
        text.push_str("=\"");
        escape_into(&mut text, v, true);
        text.push('"');
    }
    if any {
        text.push('}');
    }
    text.push(' ');
    let _ = write!(text, "{value}");
    text.push('\n');
    (sort_key(labels), text)
}

/// Escapes `\`, new lines and (in label values) `"` as the text format requires.
fn escape_into(out: &mut String, v: &str, quotes: bool) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Concatenates the families of every database (in name order) with `extra` families, sorted
/// by family name, into one body.
pub fn assemble(databases: &[Arc<DatabaseText>], extra: &DatabaseText, capacity: usize) -> Vec<u8> {
    let mut by_family: BTreeMap<&'static str, (Meta, Vec<&Entry>)> = BTreeMap::new();
    for text in databases
        .iter()
        .map(Arc::as_ref)
        .chain(std::iter::once(extra))
    {
        for (name, (meta, entries)) in &text.families {
            by_family
                .entry(name)
                .or_insert_with(|| (*meta, Vec::new()))
                .1
                .extend(entries.iter());
        }
    }
    let exact: usize = by_family
        .iter()
        .map(|(name, (meta, entries))| {
            2 * name.len()
                + meta.help.len()
                + 32
                + entries.iter().map(|e| e.text.len()).sum::<usize>()
        })
        .sum();
    let mut out = String::with_capacity(exact.max(capacity.min(exact * 2)));
    for (name, (meta, mut entries)) in by_family {
        if !meta.database_first {
            entries.sort_by(|a, b| a.key.cmp(&b.key));
        }
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_into(&mut out, meta.help, false);
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(meta.kind);
        out.push('\n');
        for e in entries {
            out.push_str(&e.text);
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Gauge = Gauge {
        name: "x_info",
        help: "Help with \\ and\nnew line.",
        labels: &["database", "path"],
    };

    #[test]
    fn lines_match_the_text_format() {
        let mut t = DatabaseText::default();
        GaugeText(&mut t).set(&G, &["a", "/p\"q"], 1.0);
        GaugeText(&mut t).set(&G, &["a", "/o"], 0.5);
        let meta = Meta {
            name: "x_seconds",
            help: "h",
            kind: "histogram",
            database_first: true,
        };
        t.histogram(meta, &[("database", "a")], &[0.001, 1.0], &[1, 2], 1.25, 4);
        let body = String::from_utf8(assemble(
            &[Arc::new(t.finish())],
            &DatabaseText::default(),
            0,
        ))
        .unwrap();
        assert_eq!(
            body,
            "# HELP x_info Help with \\\\ and\\nnew line.\n# TYPE x_info gauge\n\
             x_info{database=\"a\",path=\"/o\"} 0.5\n\
             x_info{database=\"a\",path=\"/p\\\"q\"} 1\n\
             # HELP x_seconds h\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{database=\"a\",le=\"0.001\"} 1\n\
             x_seconds_bucket{database=\"a\",le=\"1\"} 3\n\
             x_seconds_bucket{database=\"a\",le=\"+Inf\"} 4\n\
             x_seconds_sum{database=\"a\"} 1.25\n\
             x_seconds_count{database=\"a\"} 4\n"
        );
    }

    #[test]
    fn families_whose_first_label_is_not_database_sort_across_databases() {
        const C: Gauge = Gauge {
            name: "c",
            help: "h",
            labels: &["database", "collector"],
        };
        let one = |db: &str| {
            let mut t = DatabaseText::default();
            GaugeText(&mut t).set(&C, &[db, "info"], 1.0);
            GaugeText(&mut t).set(&C, &[db, "wal"], 1.0);
            Arc::new(t.finish())
        };
        let body = String::from_utf8(assemble(&[one("a"), one("b")], &DatabaseText::default(), 0))
            .unwrap();
        let lines: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "c{collector=\"info\",database=\"a\"} 1",
                "c{collector=\"info\",database=\"b\"} 1",
                "c{collector=\"wal\",database=\"a\"} 1",
                "c{collector=\"wal\",database=\"b\"} 1",
            ]
        );
    }
}
