//! Small `Copy` handles that layers pass to each other instead of references.

macro_rules! id {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id!(
    /// A SIP transaction (RFC 3261 §17), client or server.
    TsxId,
    "tsx-"
);
id!(
    /// A citizen call: the B2BUA pair of legs and everything that happens to it.
    CallId,
    "call-"
);
id!(
    /// One SIP leg (dialog side) of a call.
    LegId,
    "leg-"
);
id!(
    /// A stream (TCP) connection owned by the driver.
    ConnId,
    "conn-"
);

/// Hands out increasing ids; never reuses one within a process.
#[derive(Debug, Default)]
pub struct IdGen(u64);

impl IdGen {
    /// The next raw id.
    pub fn next_raw(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}
