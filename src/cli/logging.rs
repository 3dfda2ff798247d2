//! Logging setup: `--log.level` and `--log.format=logfmt|json`, to stderr, in the line shape
//! of Prometheus and node_exporter: `ts`, `level`, `msg`, then the event's fields as flat keys.
//!
//! ```text
//! ts=2026-12-02T07:03:28.123Z level=info msg="action done" database=app action=checkpoint duration_seconds=0.000090
//! {"ts":"2026-12-02T07:03:28.123Z","level":"info","msg":"action done","database":"app","duration_seconds":0.000090}
//! ```
//!
//! The subscriber is tracing-subscriber's; only the line is ours ([`Line`], a `FormatEvent`),
//! so values are written as an operator reads them: strings as they are, numbers as plain
//! decimals (never `8.9953e-5`), `*_seconds` fields to the microsecond.

use std::fmt::{self, Write as _};

use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Level {
    /// Everything, including per-scrape detail.
    Debug,
    /// Start-up, changes of state, actions.
    Info,
    /// Problems with a database or a request.
    Warn,
    /// Failures of the exporter itself.
    Error,
}

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `ts=… level=info msg=… key=value`.
    Logfmt,
    /// One JSON object per line, with the same keys.
    Json,
}

/// Installs the global subscriber. Safe to call once per process.
pub fn init(level: Level, format: Format) {
    let filter = match level {
        Level::Debug => LevelFilter::DEBUG,
        Level::Info => LevelFilter::INFO,
        Level::Warn => LevelFilter::WARN,
        Level::Error => LevelFilter::ERROR,
    };
    let result = tracing_subscriber::fmt()
        .event_format(Line(format))
        .with_writer(std::io::stderr)
        .with_max_level(filter)
        .try_init();
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

/// Writes one event as a logfmt or JSON line.
pub struct Line(pub Format);

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let ts = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut pairs = vec![
            ("ts", Value::Text(ts)),
            ("level", Value::Text(level)),
            ("msg", Value::Text(fields.message.unwrap_or_default())),
        ];
        pairs.extend(fields.pairs);
        writeln!(writer, "{}", render(self.0, &pairs))
    }
}

/// A field value as it is written.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// Quoted in logfmt when it needs to be; a JSON string.
    Text(String),
    /// Written bare in both formats (already in its final decimal form).
    Number(String),
    /// `true` / `false`.
    Bool(bool),
}

/// Renders `pairs` as one line (without the newline).
fn render(format: Format, pairs: &[(&str, Value)]) -> String {
    match format {
        Format::Logfmt => {
            let mut line = String::new();
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                let _ = match v {
                    Value::Text(s) => write!(line, "{k}={}", logfmt_quote(s)),
                    Value::Number(n) => write!(line, "{k}={n}"),
                    Value::Bool(b) => write!(line, "{k}={b}"),
                };
            }
            line
        }
        Format::Json => {
            let mut line = String::from("{");
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let key = serde_json::Value::from(*k);
                let _ = match v {
                    Value::Text(s) => write!(line, "{key}:{}", serde_json::Value::from(s.as_str())),
                    Value::Number(n) => write!(line, "{key}:{n}"),
                    Value::Bool(b) => write!(line, "{key}:{b}"),
                };
            }
            line.push('}');
            line
        }
    }
}

/// A logfmt value: bare when it can be, else double-quoted with `"`, `\` and control
/// characters escaped.
fn logfmt_quote(s: &str) -> String {
    let bare = !s.is_empty()
        && !s
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if bare {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An event's message and fields, in the order they were given.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    pairs: Vec<(&'static str, Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => {
                self.message = Some(match value {
                    Value::Text(s) | Value::Number(s) => s,
                    Value::Bool(b) => b.to_string(),
                })
            }
            // Records bridged from the `log` crate name their origin; the line does not need it.
            name if name.starts_with("log.") => {}
            name => self.pairs.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = if !value.is_finite() {
            Value::Text(value.to_string())
        } else if field.name().ends_with("_seconds") {
            Value::Number(format!("{value:.6}"))
        } else {
            // Display never uses exponent notation.
            Value::Number(value.to_string())
        };
        self.push(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Number(value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::Number(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Text(value.to_string()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Text(value.to_string()));
    }

    /// `%x` fields and the message arrive here, already in their Display form.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::Text(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: Format) -> String {
        render(
            format,
            &[
                ("msg", Value::Text("action done".into())),
                ("database", Value::Text("app".into())),
                ("error", Value::Text("say \"no\"\nnow".into())),
                ("duration_seconds", Value::Number("0.000090".into())),
                ("busy", Value::Bool(false)),
                ("empty", Value::Text(String::new())),
            ],
        )
    }

    #[test]
    fn logfmt_quotes_only_what_needs_it() {
        assert_eq!(
            line(Format::Logfmt),
            r#"msg="action done" database=app error="say \"no\"\nnow" duration_seconds=0.000090 busy=false empty="""#
        );
    }

    #[test]
    fn json_is_one_flat_object() {
        let v: serde_json::Value = serde_json::from_str(&line(Format::Json)).unwrap();
        assert_eq!(v["msg"], "action done");
        assert_eq!(v["error"], "say \"no\"\nnow");
        assert_eq!(v["duration_seconds"], 0.00009);
        assert_eq!(v["busy"], false);
    }
}
