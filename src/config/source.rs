//! Where things are in the TOML text: key paths <-> byte spans <-> 1-based
//! line and column, and the translation of parser and serde errors into
//! [`ConfigError`]s that name the key.
//!
//! The toml crate's span-preserving parse ([`DeTable`]) gives every key and
//! value its byte range. We flatten it into a list of `(path, key span,
//! value span)`, so a serde error (which carries a span but no usable key
//! path) can be named by the deepest entry containing its span, and a
//! semantic error (which knows its key path) can be given a line.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigError;

/// One key or array element of the document.
struct Entry {
    /// `sip.t1_ms`, `trunks[0].sources[1]`.
    path: String,
    /// The key's span; `None` for array elements.
    key: Option<Range<usize>>,
    /// The value's span; for a `[table]` or `[[table]]` the header.
    value: Range<usize>,
    /// A table introduced by a `[header]` line.
    header: bool,
}

/// The text of one configuration file and the spans of its keys.
pub(super) struct Source<'a> {
    origin: &'a str,
    text: &'a str,
    entries: Vec<Entry>,
}

impl<'a> Source<'a> {
    /// A source with no index yet; call [`Source::index`] after parsing.
    pub(super) fn new(origin: &'a str, text: &'a str) -> Self {
        Source {
            origin,
            text,
            entries: Vec::new(),
        }
    }

    /// The file name or origin errors carry.
    pub(super) fn origin(&self) -> &str {
        self.origin
    }

    /// Record the spans of every key and element of `root`.
    pub(super) fn index(&mut self, root: &Spanned<DeTable<'_>>) {
        self.walk_table("", root.get_ref());
    }

    fn walk_table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let segment = render_key(key.get_ref());
            let path = if prefix.is_empty() {
                segment
            } else {
                format!("{prefix}.{segment}")
            };
            self.walk_value(path, Some(key.span()), value);
        }
    }

    fn walk_value(
        &mut self,
        path: String,
        key: Option<Range<usize>>,
        value: &Spanned<DeValue<'_>>,
    ) {
        let span = value.span();
        let header = matches!(value.get_ref(), DeValue::Table(_))
            && self.text.as_bytes().get(span.start) == Some(&b'[');
        match value.get_ref() {
            DeValue::Table(t) => self.walk_table(&path, t),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk_value(format!("{path}[{i}]"), None, item);
                }
            }
            _ => {}
        }
        self.entries.push(Entry {
            path,
            key,
            value: span,
            header,
        });
    }

    /// `offset` clamped into the text and back onto a character boundary,
    /// so slicing at it cannot panic whatever span a parser reports.
    fn boundary(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.boundary(offset);
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..]
            .chars()
            .filter(|c| *c != '\u{feff}')
            .count()
            + 1;
        (line, column)
    }

    /// The path of the deepest key or element whose key or value contains
    /// `offset`; failing that, one that ends exactly at it.
    fn path_at(&self, offset: usize) -> Option<&str> {
        let inside = |r: &Range<usize>| r.start <= offset && offset < r.end;
        let touching = |r: &Range<usize>| r.start <= offset && offset <= r.end;
        let deepest = |hit: &dyn Fn(&Range<usize>) -> bool| {
            self.entries
                .iter()
                .filter(|e| hit(&e.value) || e.key.as_ref().is_some_and(hit))
                .max_by_key(|e| (depth(&e.path), usize::MAX - e.value.len()))
                .map(|e| e.path.as_str())
        };
        deepest(&inside).or_else(|| deepest(&touching))
    }

    /// The span to point at for `path`: its value, or if it is absent the
    /// nearest enclosing key or table that is present.
    fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut path = path;
        loop {
            if let Some(e) = self.entries.iter().find(|e| e.path == path) {
                return Some(e.value.clone());
            }
            path = parent(path)?;
        }
    }

    /// 1-based line of `path` (or of its nearest present ancestor).
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        self.span_of(path).map(|s| self.line_col(s.start).0)
    }

    /// An error with no position, such as a read failure.
    pub(super) fn file_error(origin: &str, message: String, help: Option<String>) -> ConfigError {
        ConfigError {
            file: origin.to_owned(),
            line: None,
            column: None,
            key: None,
            message,
            help,
        }
    }

    fn at(
        &self,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: String,
        help: Option<String>,
    ) -> ConfigError {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = self.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            file: self.origin.to_owned(),
            line,
            column,
            key,
            message,
            help,
        }
    }

    /// A semantic error about `key`, positioned at `key` (or its nearest
    /// present ancestor, for a missing key).
    pub(super) fn error(
        &self,
        key: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) -> ConfigError {
        self.error_at(key, key, message, help)
    }

    /// A semantic error about `key`, positioned at `at` (for a missing key
    /// that another key makes necessary).
    pub(super) fn error_at(
        &self,
        key: &str,
        at: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) -> ConfigError {
        self.at(self.span_of(at), Some(key.to_owned()), message.into(), help)
    }

    /// A TOML syntax error from the parser.
    pub(super) fn syntax_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span();
        let offset = span.as_ref().map(|s| s.start);
        let mut key = offset.and_then(|o| self.path_at(o)).map(str::to_owned);
        let mut help = None;
        if e.message() == "duplicate key" {
            if key.is_none() {
                key = span.as_ref().and_then(|s| self.duplicate_key_path(s));
            }
            help =
                Some("a key or table may appear only once; remove or merge the repeats".to_owned());
        } else if let Some(o) = offset {
            if self.unquoted_text_value(o) {
                help = Some(
                    "text values (names, addresses, CIDRs, numbers to dial) must be in double \
                     quotes, e.g. listen = \"127.0.0.1:5060\""
                        .to_owned(),
                );
            }
        }
        self.at(span, key, format!("invalid TOML: {}", e.message()), help)
    }

    /// For a repeated key the partial parse holds only the first; name the
    /// repeat from the `[table]` header it follows.
    fn duplicate_key_path(&self, span: &Range<usize>) -> Option<String> {
        let name = self.text.get(span.clone())?;
        let table = self
            .entries
            .iter()
            .filter(|e| e.header && e.value.start <= span.start)
            .max_by_key(|e| e.value.start);
        Some(match table {
            Some(t) => format!("{}.{name}", t.path),
            None => name.to_owned(),
        })
    }

    /// Whether the line holding `offset` reads `key = bare words`.
    fn unquoted_text_value(&self, offset: usize) -> bool {
        let offset = self.boundary(offset);
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let Some((_, value)) = self.text[start..end].split_once('=') else {
            return false;
        };
        let value = value.split('#').next().unwrap_or("").trim();
        !value.is_empty()
            && !value.starts_with(['"', '\'', '[', '{'])
            && value.parse::<i64>().is_err()
            && value.parse::<f64>().is_err()
            && value != "true"
            && value != "false"
    }

    /// A serde error from deserializing the raw structs: name the key and
    /// say what was expected, in the words of this file's schema.
    pub(super) fn serde_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span();
        let path = span
            .as_ref()
            .and_then(|s| self.path_at(s.start))
            .map(str::to_owned);
        let msg = e.message();
        let (key, message, help) = if let Some(rest) = msg.strip_prefix("unknown field `") {
            let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let expected = backticked(expected);
            let message = if expected.is_empty() {
                "unknown key; this table takes no keys".to_owned()
            } else {
                format!("unknown key; expected one of: {}", expected.join(", "))
            };
            let help = match closest(name, &expected) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "remove it; docs/config.md lists every key".to_owned(),
            };
            (path, message, Some(help))
        } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
            let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, "?"));
            let expected = humanize(expected);
            let help = type_help(found, &expected);
            (path, format!("expected {expected}, found {found}"), help)
        } else if let Some(rest) = msg.strip_prefix("invalid value: ") {
            let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, "?"));
            let expected = humanize(expected);
            (
                path,
                format!("invalid value {found}; expected {expected}"),
                None,
            )
        } else if let Some(rest) = msg.strip_prefix("missing field `") {
            let name = rest.trim_end_matches('`');
            let key = match path {
                Some(p) => format!("{p}.{name}"),
                None => name.to_owned(),
            };
            (Some(key), "missing key".to_owned(), None)
        } else {
            (path, msg.to_owned(), None)
        };
        self.at(span, key, message, help)
    }
}

/// A key as it appears in a path: bare if TOML allows it bare, else quoted.
fn render_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// Number of segments in a path (`a.b[0].c` has 4).
fn depth(path: &str) -> usize {
    1 + path.matches(['.', '[']).count()
}

/// `a.b[0]` -> `a.b` -> `a` -> None.
fn parent(path: &str) -> Option<&str> {
    path.rfind(['.', '[']).map(|i| &path[..i])
}

/// The words between backticks: "`a`, `b` or `c`" -> [a, b, c].
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Serde's type names in this file's words.
fn humanize(expected: &str) -> String {
    match expected {
        "a sequence" => "an array".to_owned(),
        "a map" => "a table".to_owned(),
        other => other.to_owned(),
    }
}

fn type_help(found: &str, expected: &str) -> Option<String> {
    let found_string = found.starts_with("string");
    if expected.contains("integer") && found_string {
        Some("write the number without quotes".to_owned())
    } else if expected == "a string" && !found_string {
        Some("put the value in double quotes".to_owned())
    } else if expected == "an array" {
        Some("write a list in square brackets, e.g. [\"a\", \"b\"]".to_owned())
    } else if expected.starts_with("a table") {
        Some("write it as a [table] header line followed by key = value lines".to_owned())
    } else {
        None
    }
}

/// The candidate nearest to `word` by edit distance, if it is near enough to
/// be a plausible typo.
pub(super) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let s = Source::new("x", "ab\ncd\n\né=1\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(1), (1, 2));
        assert_eq!(s.line_col(2), (1, 3)); // the newline itself
        assert_eq!(s.line_col(3), (2, 1));
        assert_eq!(s.line_col(6), (3, 1));
        assert_eq!(s.line_col(7), (4, 1));
        assert_eq!(s.line_col(9), (4, 2)); // after the two-byte é
        assert_eq!(s.line_col(8), (4, 1)); // inside é: clamped back
        assert_eq!(s.line_col(999), (5, 1));
    }

    #[test]
    fn crlf_and_bom() {
        let s = Source::new("x", "\u{feff}a=1\r\nb=2\r\n");
        assert_eq!(s.line_col(3), (1, 1));
        assert_eq!(s.line_col(8), (2, 1));
        assert_eq!(s.line_col(10), (2, 3));
    }

    #[test]
    fn paths() {
        assert_eq!(parent("routes[2].target"), Some("routes[2]"));
        assert_eq!(parent("routes[2]"), Some("routes"));
        assert_eq!(parent("routes"), None);
        assert_eq!(depth("trunks[0].sources[1]"), 4);
        assert_eq!(render_key("t1_ms"), "t1_ms");
        assert_eq!(render_key("a.b"), "\"a.b\"");
        assert_eq!(render_key(""), "\"\"");
    }

    #[test]
    fn nearest_key() {
        let keys = ["listen", "advertise", "t1_ms", "t2_ms"];
        assert_eq!(closest("t1_msec", &keys), Some("t1_ms"));
        assert_eq!(closest("advertize", &keys), Some("advertise"));
        assert_eq!(closest("zzz", &keys), None);
        assert_eq!(backticked("`a`, `b` or `c`"), ["a", "b", "c"]);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
