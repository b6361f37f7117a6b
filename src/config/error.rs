//! [`ConfigError`]: what is wrong with a configuration file, and where.

use std::fmt;

/// A configuration file that cannot be used: which file, where in it, which
/// key, what is wrong and, when we know it, how to fix it.
///
/// Displays like a compiler diagnostic, so editors can jump to it:
///
/// ```text
/// configs/x.toml:7:1: key `sip.t1_msec`: unknown key; expected one of: listen, advertise, t1_ms, ...
///   help: did you mean `t1_ms`?
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Render(self))]
pub struct ConfigError {
    /// The file as the caller named it (or the origin given to `parse`).
    pub file: String,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters) on that line, when known.
    pub column: Option<usize>,
    /// Path of the offending key, like `trunks[0].sources[1]` (0-based indices).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
}

struct Render<'a>(&'a ConfigError);

impl fmt::Display for Render<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        f.write_str(&e.file)?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
            if let Some(column) = e.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &e.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&e.message)?;
        if let Some(help) = &e.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err() -> ConfigError {
        ConfigError {
            file: "configs/x.toml".into(),
            line: Some(7),
            column: Some(1),
            key: Some("sip.t1_msec".into()),
            message: "unknown key; expected one of: listen, t1_ms".into(),
            help: Some("did you mean `t1_ms`?".into()),
        }
    }

    #[test]
    fn full_display() {
        assert_eq!(
            err().to_string(),
            "configs/x.toml:7:1: key `sip.t1_msec`: unknown key; expected one of: listen, t1_ms\n  \
             help: did you mean `t1_ms`?"
        );
    }

    #[test]
    fn display_without_location_key_or_help() {
        let e = ConfigError {
            line: None,
            column: None,
            key: None,
            help: None,
            message: "cannot read the file: not found".into(),
            ..err()
        };
        assert_eq!(
            e.to_string(),
            "configs/x.toml: cannot read the file: not found"
        );
    }
}
