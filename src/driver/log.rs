//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`),
//! as human-readable text or as one JSON object per line (for journald and
//! log shippers).
//!
//! A JSON line looks like
//! `{"ts":"2025-01-01T00:00:00.000000Z","level":"INFO","target":"hotline::driver","spans":["call"],"message":"draining","live":3}`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `tracing-subscriber`'s text format (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter from `RUST_LOG`, `info` when unset; an invalid `RUST_LOG` is
/// reported and replaced by `info`.
fn filter() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => match EnvFilter::try_new(&s) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("hotline: ignoring RUST_LOG={s:?} ({e}); logging at info");
                EnvFilter::new("info")
            }
        },
        _ => EnvFilter::new("info"),
    }
}

/// Install the global subscriber (once; later calls do nothing).
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(Json).try_init(),
    };
}

/// The JSON line format (`tracing-subscriber`'s own needs a feature we do
/// not build).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let meta = event.metadata();
        w.write_str("{\"ts\":")?;
        quote(&mut w, &ts)?;
        w.write_str(",\"level\":")?;
        quote(&mut w, meta.level().as_str())?;
        w.write_str(",\"target\":")?;
        quote(&mut w, meta.target())?;
        if let Some(scope) = ctx.event_scope() {
            w.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                quote(&mut w, span.name())?;
            }
            w.write_char(']')?;
        }
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.w.write_char(',')?;
                quote(self.w, field.name())?;
                self.w.write_char(':')?;
                value(self.w)
            })();
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| quote(w, value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| write!(w, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, |w| write!(w, "{value}"));
        } else {
            self.field(field, |w| quote(w, &value.to_string()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| quote(w, &format!("{value:?}")));
    }
}

/// Write `s` as a JSON string.
fn quote(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(w, "\\u{:04x}", u32::from(c))?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_escape_and_type_fields() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .event_format(Json)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("call");
            let _g = span.enter();
            tracing::info!(live = 3, ok = true, peer = %"a\"b", "line\none");
        });
        let text = match buf.0.lock() {
            Ok(v) => String::from_utf8_lossy(&v).into_owned(),
            Err(_) => panic!("poisoned"),
        };
        assert!(text.starts_with("{\"ts\":\""), "{text}");
        assert!(text.ends_with("}\n"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        for want in [
            "\"level\":\"INFO\"",
            "\"spans\":[\"call\"]",
            "\"message\":\"line\\none\"",
            "\"live\":3",
            "\"ok\":true",
            "\"peer\":\"a\\\"b\"",
        ] {
            assert!(text.contains(want), "missing {want} in {text}");
        }
    }
}
