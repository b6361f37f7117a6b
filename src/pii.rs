//! Personal data as a type (str0m's `Pii<T>`, DOMAIN.md "Confidentiality").
//!
//! Caller and callee numbers, SIP URIs with user parts, and display names are
//! wrapped in [`Pii`]. `Debug` and `Display` print a redacted form that keeps
//! only the last four characters (enough for an operator to tell two calls
//! apart), so a stray `info!("{caller}")` never writes a citizen's number to
//! a log. The clear value comes out only through [`Pii::reveal`], which is
//! greppable: every use is a place the confidentiality rules must be audited.

use std::fmt;

/// A value that is personal data.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    /// Wrap a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The clear value. Every call site is an audited disclosure.
    pub fn reveal(&self) -> &T {
        &self.0
    }

    /// Unwrap into the clear value.
    pub fn into_revealed(self) -> T {
        self.0
    }
}

impl<T: AsRef<str>> Pii<T> {
    /// The masked form: `***` and the last four characters (e.g. `***5678`).
    pub fn masked(&self) -> String {
        let s = self.0.as_ref();
        let n = s.chars().count();
        if n <= 4 {
            return "***".to_string();
        }
        let tail: String = s.chars().skip(n - 4).collect();
        format!("***{tail}")
    }
}

impl<T: AsRef<str>> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pii({})", self.masked())
    }
}

impl<T: AsRef<str>> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_in_debug_and_display() {
        let p = Pii::new("13812345678".to_string());
        assert_eq!(format!("{p}"), "***5678");
        assert_eq!(format!("{p:?}"), "Pii(***5678)");
        assert_eq!(p.reveal(), "13812345678");
        assert_eq!(Pii::new("110").to_string(), "***");
    }
}
