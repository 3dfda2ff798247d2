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

use crate::collect::series::{Family, Gauge, Series};

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

/// A database's series, by family name: built entry by entry, then packed by
/// [`DatabaseText::finish`] for keeping.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DatabaseText {
    /// Entries by family while the text is being built.
    building: BTreeMap<&'static str, (Meta, Vec<Entry>)>,
    /// Once finished, the text of every family whose first label is `database`, one after
    /// another in name order ...
    packed: String,
    /// ... and where each of them ends in `packed`.
    spans: Vec<(Meta, u32)>,
    /// Once finished, the other families (their entries interleave with other databases'),
    /// in name order, entries sorted.
    sorted: Vec<(Meta, Vec<Entry>)>,
    /// The database's static labels, added to every sample while the text is built.
    static_labels: Vec<(String, String)>,
}

/// A family's part of one database's text.
enum Part<'a> {
    /// Ready text.
    Text(&'a str),
    /// Entries still to be merged with other databases' by sort key.
    Entries(&'a [Entry]),
}

impl DatabaseText {
    /// An empty text whose every sample also carries `labels` (the database's static labels).
    pub fn with_labels(labels: &[(String, String)]) -> Self {
        DatabaseText {
            static_labels: labels.to_vec(),
            ..Default::default()
        }
    }

    /// `labels` and the static labels.
    fn all_labels<'a>(&'a self, labels: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = labels.to_vec();
        all.extend(
            self.static_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        all
    }

    /// Adds one sample of `meta` with `labels` (name, value pairs, in any order).
    pub fn sample(&mut self, meta: Meta, labels: &[(&str, &str)], suffix: &str, value: f64) {
        let (key, text) = if self.static_labels.is_empty() {
            line(meta.name, suffix, labels, None, value)
        } else {
            line(meta.name, suffix, &self.all_labels(labels), None, value)
        };
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
        let all;
        let labels = if self.static_labels.is_empty() {
            labels
        } else {
            all = self.all_labels(labels);
            &all[..]
        };
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

    /// Adds the OpenMetrics `_created` sample (`unix`, the time it started from zero) of the
    /// counter or histogram of `meta` and `labels` just added: it belongs to that series'
    /// lines. Only for an OpenMetrics body; the text format has no such samples.
    pub fn created(&mut self, meta: Meta, labels: &[(&str, &str)], unix: f64) {
        let base = meta.name.strip_suffix("_total").unwrap_or(meta.name);
        let (_, text) = if self.static_labels.is_empty() {
            line(base, "_created", labels, None, unix)
        } else {
            line(base, "_created", &self.all_labels(labels), None, unix)
        };
        if let Some(last) = self
            .building
            .get_mut(meta.name)
            .and_then(|(_, entries)| entries.last_mut())
        {
            last.text.push_str(&text);
        }
    }

    fn push(&mut self, meta: Meta, key: String, text: String) {
        let (_, entries) = self
            .building
            .entry(meta.name)
            .or_insert_with(|| (meta, Vec::new()));
        entries.push(Entry { key, text });
    }

    /// Sorts each family's entries and packs them for keeping (done once, when the text is
    /// made). A family whose first label is `database` has all of one database's entries side
    /// by side in the body, so its text is kept in one string shared by all such families,
    /// without sort keys: the cache of a fleet's text is the exporter's largest use of memory,
    /// and one string per database instead of two per series is a fraction of it.
    pub fn finish(mut self) -> Self {
        self.static_labels = Vec::new();
        let building = std::mem::take(&mut self.building);
        let mut capacity = 0;
        for (meta, entries) in building.values() {
            if meta.database_first {
                capacity += entries.iter().map(|e| e.text.len()).sum::<usize>();
            }
        }
        self.packed.reserve_exact(capacity);
        for (_, (meta, mut entries)) in building {
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            if meta.database_first {
                for e in &entries {
                    self.packed.push_str(&e.text);
                }
                let end = u32::try_from(self.packed.len()).expect("a database's text under 4 GiB");
                self.spans.push((meta, end));
            } else {
                for e in entries.iter_mut() {
                    e.key.shrink_to_fit();
                    e.text.shrink_to_fit();
                }
                entries.shrink_to_fit();
                self.sorted.push((meta, entries));
            }
        }
        self.spans.shrink_to_fit();
        self.sorted.shrink_to_fit();
        self
    }

    /// Every family's part, in name order within each kind (packed first; a text not
    /// finished yet gives its entries as they are).
    fn parts(&self) -> impl Iterator<Item = (Meta, Part<'_>)> {
        let mut start = 0;
        let packed = self.spans.iter().map(move |(meta, end)| {
            let text = &self.packed[start..*end as usize];
            start = *end as usize;
            (*meta, Part::Text(text))
        });
        let sorted = self
            .sorted
            .iter()
            .map(|(meta, entries)| (*meta, Part::Entries(entries)));
        let building = self
            .building
            .values()
            .map(|(meta, entries)| (*meta, Part::Entries(entries)));
        packed.chain(sorted).chain(building)
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

    fn set_family(&mut self, family: Family, labels: &[(&str, &str)], value: f64) {
        let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
        let meta = Meta {
            name: family.name,
            help: family.help,
            kind: family.kind,
            database_first: database_first(&names),
        };
        self.0.sample(meta, labels, "", value);
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
pub fn assemble(databases: &[Arc<DatabaseText>], extra: &DatabaseText) -> Vec<u8> {
    let mut by_family: BTreeMap<&'static str, (Meta, Vec<Part<'_>>)> = BTreeMap::new();
    for text in databases
        .iter()
        .map(Arc::as_ref)
        .chain(std::iter::once(extra))
    {
        for (meta, part) in text.parts() {
            by_family
                .entry(meta.name)
                .or_insert_with(|| (meta, Vec::new()))
                .1
                .push(part);
        }
    }
    let exact: usize = by_family
        .iter()
        .map(|(name, (meta, parts))| {
            let body: usize = parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.len(),
                    Part::Entries(es) => es.iter().map(|e| e.text.len()).sum(),
                })
                .sum();
            2 * name.len() + meta.help.len() + meta.kind.len() + 32 + body
        })
        .sum();
    let mut out = String::with_capacity(exact);
    for (name, (meta, parts)) in by_family {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_into(&mut out, meta.help, false);
        out.push_str("\n# TYPE ");
        out.push_str(name);
        out.push(' ');
        out.push_str(meta.kind);
        out.push('\n');
        if meta.database_first {
            for part in &parts {
                match part {
                    Part::Text(t) => out.push_str(t),
                    Part::Entries(es) => es.iter().for_each(|e| out.push_str(&e.text)),
                }
            }
        } else {
            let mut entries: Vec<&Entry> = parts
                .iter()
                .flat_map(|p| match p {
                    Part::Entries(es) => es.iter(),
                    Part::Text(_) => [].iter(),
                })
                .collect();
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            for e in entries {
                out.push_str(&e.text);
            }
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
        let body =
            String::from_utf8(assemble(&[Arc::new(t.finish())], &DatabaseText::default())).unwrap();
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
        let body =
            String::from_utf8(assemble(&[one("a"), one("b")], &DatabaseText::default())).unwrap();
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
