//! [`Flow`]: a named graph of [`Node`]s, and [`Flow::validate`], the load-time
//! check that every path through it ends somewhere sensible.

// A flow is validated once, at load; FlowError's fields are its contract.
#![allow(
    clippy::result_large_err,
    reason = "FlowError's fields are public API; errors are built once, at load"
)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

/// A flow: a name, an entry node and its nodes, in the order written.
///
/// Node references are by name. Build one with [`Flow::new`], then check it
/// with [`Flow::validate`] before handing it to a [`super::Runner`] (the
/// runner never panics on an unvalidated flow: a dangling reference or a
/// loop without input ends the call with cause [`super::FLOW_ERROR`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Unique name of the flow.
    pub name: String,
    /// Name of the node a call starts at.
    pub entry: String,
    /// The nodes, in file order (so errors can name `nodes[j]`).
    pub nodes: Vec<Node>,
    index: HashMap<String, usize>,
}

/// One node of a [`Flow`]: a name and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique within its flow.
    pub name: String,
    /// What the node does.
    pub kind: NodeKind,
}

/// What a node does. Node references are node names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// Play a prompt, then go on.
    Play {
        /// A shipped prompt name (see [`super::PROMPTS`]).
        prompt: String,
        /// A digit stops the prompt (and is kept for the next menu or collect).
        barge_in: bool,
        /// Where to go when it has played.
        next: String,
    },
    /// Play a prompt and branch on one digit.
    Menu {
        /// The question.
        prompt: String,
        /// A digit stops the prompt and is taken as the choice.
        barge_in: bool,
        /// Digit -> node.
        options: BTreeMap<char, String>,
        /// How long to wait for a digit after the prompt.
        timeout_after: Duration,
        /// Where a caller who presses nothing goes (required: GB/T 33358
        /// callers who cannot or will not press keys must still be served).
        timeout: String,
        /// Where a caller goes after `retries` replays for invalid keys.
        invalid: String,
        /// How many times an invalid key replays the prompt.
        retries: u8,
    },
    /// Play a prompt and collect several digits.
    Collect {
        /// The request.
        prompt: String,
        /// A digit stops the prompt and is the first one collected.
        barge_in: bool,
        /// Fewest digits accepted (at least 1).
        min: u8,
        /// Most digits: the collection ends when this many are in.
        max: u8,
        /// Ends the collection early (`None`: no terminator).
        terminator: Option<char>,
        /// How long to wait for the first digit after the prompt.
        first_digit_timeout: Duration,
        /// How long to wait for each further digit.
        inter_digit_timeout: Duration,
        /// How many times a failed attempt replays the prompt.
        retries: u8,
        /// Tag that receives the digits, if any.
        tag: Option<String>,
        /// Where to go with the digits.
        next: String,
        /// Where to go after the last failed attempt.
        fail: String,
    },
    /// Hand the call to the ACD (terminal).
    Queue {
        /// The queue's name.
        queue: String,
        /// Skills an agent needs.
        skills: Vec<String>,
        /// Higher is served first.
        priority: u8,
    },
    /// Send the call to a configured target (terminal).
    Transfer {
        /// A `[[targets]]` name.
        target: String,
    },
    /// Set a tag carried with the call (queue, record), then go on.
    SetTag {
        /// Tag name.
        key: String,
        /// Tag value.
        value: String,
        /// Where to go.
        next: String,
    },
    /// Branch on the caller's local time.
    Hours {
        /// When the centre is open.
        schedule: Schedule,
        /// Where to go when open.
        open: String,
        /// Where to go when closed.
        closed: String,
    },
    /// End the call (terminal).
    Hangup {
        /// Why, for the record (`None`: normal clearing).
        cause: Option<String>,
    },
    /// Go to another node.
    Goto {
        /// Where.
        next: String,
    },
}

impl NodeKind {
    /// The kind's name as written in the config (`kind = "menu"`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Play { .. } => "play",
            Self::Menu { .. } => "menu",
            Self::Collect { .. } => "collect",
            Self::Queue { .. } => "queue",
            Self::Transfer { .. } => "transfer",
            Self::SetTag { .. } => "set_tag",
            Self::Hours { .. } => "hours",
            Self::Hangup { .. } => "hangup",
            Self::Goto { .. } => "goto",
        }
    }

    /// The prompt this node plays, if any.
    #[must_use]
    pub fn prompt(&self) -> Option<&str> {
        match self {
            Self::Play { prompt, .. }
            | Self::Menu { prompt, .. }
            | Self::Collect { prompt, .. } => Some(prompt),
            _ => None,
        }
    }

    /// Whether reaching this node waits for the caller or the media (a
    /// prompt, a digit): a loop through such a node cannot spin.
    #[must_use]
    pub fn waits(&self) -> bool {
        matches!(
            self,
            Self::Play { .. } | Self::Menu { .. } | Self::Collect { .. }
        )
    }

    /// The nodes this one can lead to, each with the key that names it
    /// (`"next"`, `"options.1"`, ...).
    #[must_use]
    pub fn edges(&self) -> Vec<(String, &str)> {
        let k = |s: &str| s.to_owned();
        match self {
            Self::Play { next, .. } | Self::SetTag { next, .. } | Self::Goto { next } => {
                vec![(k("next"), next)]
            }
            Self::Menu {
                options,
                timeout,
                invalid,
                ..
            } => {
                let mut v: Vec<(String, &str)> = options
                    .iter()
                    .map(|(d, n)| (format!("options.{}", option_key(*d)), n.as_str()))
                    .collect();
                v.push((k("timeout"), timeout));
                v.push((k("invalid"), invalid));
                v
            }
            Self::Collect { next, fail, .. } => vec![(k("next"), next), (k("fail"), fail)],
            Self::Hours { open, closed, .. } => vec![(k("open"), open), (k("closed"), closed)],
            Self::Queue { .. } | Self::Transfer { .. } | Self::Hangup { .. } => Vec::new(),
        }
    }
}

/// A menu option's key as a config key path segment (`*` and `#` quoted).
fn option_key(d: char) -> String {
    if d.is_ascii_alphanumeric() {
        d.to_string()
    } else {
        format!("\"{d}\"")
    }
}

/// Whether `c` is a DTMF digit: `0`–`9`, `*`, `#`, `A`–`D`.
#[must_use]
pub fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// The caller's local time, given by the driver with each input (no core
/// reads a clock): the day of the week and the minute of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Day of the week.
    pub weekday: Weekday,
    /// Minutes since local midnight, 0..1440.
    pub minute: u16,
}

impl LocalTime {
    /// The local time `unix_secs` after the Unix epoch in a zone
    /// `utc_offset_minutes` east of UTC (China: +480).
    #[must_use]
    pub fn from_unix(unix_secs: u64, utc_offset_minutes: i32) -> Self {
        let local =
            i64::try_from(unix_secs).unwrap_or(i64::MAX / 2) + i64::from(utc_offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let minute = u16::try_from(local.rem_euclid(86_400) / 60).unwrap_or(0);
        // 1970-01-01 was a Thursday.
        let weekday = match (days + 3).rem_euclid(7) {
            0 => Weekday::Mon,
            1 => Weekday::Tue,
            2 => Weekday::Wed,
            3 => Weekday::Thu,
            4 => Weekday::Fri,
            5 => Weekday::Sat,
            _ => Weekday::Sun,
        };
        Self { weekday, minute }
    }

    /// `weekday` at `hour:minute` (clamped to 23:59).
    #[must_use]
    pub fn new(weekday: Weekday, hour: u8, minute: u8) -> Self {
        let minute = (u16::from(hour.min(23)) * 60 + u16::from(minute.min(59))).min(1439);
        Self { weekday, minute }
    }
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs, reason = "the days of the week")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn parse(s: &str) -> Option<Self> {
        let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| Self::ALL[i])
    }
}

/// When a centre is open: always (7×24, the 12345 default), or weekly
/// windows. Holidays and make-up working days are not modelled yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Open all the time.
    Always,
    /// Open in any of these windows.
    Weekly(Vec<Window>),
}

/// One weekly window: a set of days and a time range within each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    /// Minutes since midnight, inclusive.
    start: u16,
    /// Minutes since midnight, exclusive (up to 1440, "24:00").
    end: u16,
}

/// How to write a schedule entry, for error help.
pub const SCHEDULE_HELP: &str = "write \"7x24\", or weekly windows like \
    [\"Mon-Fri 08:30-17:30\", \"Sat,Sun 09:00-12:00\"] (days Mon..Sun, 24-hour times, end after start)";

impl Schedule {
    /// Parse the config form: `["7x24"]` or windows like `"Mon-Fri 08:30-17:30"`.
    ///
    /// # Errors
    /// The index of the bad entry and what is wrong with it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (usize, String)> {
        if entries.is_empty() {
            return Err((0, "empty schedule".to_owned()));
        }
        let mut windows = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let e = e.as_ref().trim();
            if e.eq_ignore_ascii_case("7x24") {
                if entries.len() > 1 {
                    return Err((i, "\"7x24\" must be the only entry".to_owned()));
                }
                return Ok(Self::Always);
            }
            windows.push(Window::parse(e).ok_or_else(|| (i, format!("invalid window {e:?}")))?);
        }
        Ok(Self::Weekly(windows))
    }

    /// Whether the centre is open at `t`.
    #[must_use]
    pub fn is_open(&self, t: LocalTime) -> bool {
        match self {
            Self::Always => true,
            Self::Weekly(windows) => windows
                .iter()
                .any(|w| w.days[t.weekday.index()] && w.start <= t.minute && t.minute < w.end),
        }
    }
}

impl Window {
    /// `"Mon-Fri 08:30-17:30"`, `"Sat,Sun 09:00-12:00"`, `"Wed 14:00-24:00"`.
    fn parse(s: &str) -> Option<Self> {
        let (days_text, times) = s.split_once(' ')?;
        let mut days = [false; 7];
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (Weekday::parse(a)?.index(), Weekday::parse(b)?.index());
                    if a > b {
                        return None;
                    }
                    days[a..=b].iter_mut().for_each(|d| *d = true);
                }
                None => days[Weekday::parse(part)?.index()] = true,
            }
        }
        let (start, end) = times.trim().split_once('-')?;
        let (start, end) = (clock(start)?, clock(end)?);
        (start < end).then_some(Self { days, start, end })
    }
}

/// `"08:30"` -> 510; `"24:00"` -> 1440.
fn clock(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    let minute = h * 60 + m;
    (m < 60 && minute <= 1440).then_some(minute)
}

/// What is wrong with a flow: which flow, which node (its index in
/// [`Flow::nodes`] and its name), which of its keys, what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FlowError {
    /// The flow's name.
    pub flow: String,
    /// The node's index and name; `None` for the flow itself (`entry`, ...).
    pub node: Option<(usize, String)>,
    /// The key at fault, as written in the config: `"prompt"`,
    /// `"options.1"`, `"entry"`, ...
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flow \"{}\"", self.flow)?;
        if let Some((_, node)) = &self.node {
            write!(f, ", node \"{node}\"")?;
        }
        write!(f, ", key `{}`: {}", self.key, self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

impl Flow {
    /// A flow from its parts; check it with [`Flow::validate`].
    #[must_use]
    pub fn new(name: impl Into<String>, entry: impl Into<String>, nodes: Vec<Node>) -> Self {
        let mut index = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            index.entry(n.name.clone()).or_insert(i);
        }
        Self {
            name: name.into(),
            entry: entry.into(),
            nodes,
            index,
        }
    }

    /// The index of the node called `name`.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn err(&self, node: Option<usize>, key: &str, message: String, help: &str) -> FlowError {
        FlowError {
            flow: self.name.clone(),
            node: node.map(|i| (i, self.nodes[i].name.clone())),
            key: key.to_owned(),
            message,
            help: (!help.is_empty()).then(|| help.to_owned()),
        }
    }

    /// Check the flow against what exists: `prompts` (the shipped prompt
    /// names), `queues` (`None`: queue names are not checked, as there is no
    /// queue table yet) and `targets` (`[[targets]]` names).
    ///
    /// Refused: duplicate node names, an unknown entry, prompt, queue,
    /// target or node reference, a node the entry cannot reach, a loop that
    /// can go round without waiting for input (only `set_tag`, `goto` and
    /// `hours` nodes), a menu without options or with a non-DTMF option, a
    /// collect with `min` 0 or above `max` or a non-DTMF terminator, a zero
    /// timeout. The first problem found is returned.
    ///
    /// # Errors
    /// [`FlowError`] naming the flow, the node and its key.
    pub fn validate(
        &self,
        prompts: &[&str],
        queues: Option<&[&str]>,
        targets: &[&str],
    ) -> Result<(), FlowError> {
        if self.nodes.is_empty() {
            return Err(self.err(
                None,
                "nodes",
                "the flow has no nodes".into(),
                "add [[flows.nodes]] tables",
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(first) = seen.insert(&n.name, i) {
                return Err(self.err(
                    Some(i),
                    "name",
                    format!(
                        "duplicate node name \"{}\"; first used by nodes[{first}]",
                        n.name
                    ),
                    "node names are unique within a flow",
                ));
            }
        }
        if self.find(&self.entry).is_none() {
            return Err(self.err(
                None,
                "entry",
                format!("unknown node \"{}\"", self.entry),
                &format!("name one of this flow's nodes ({})", self.node_list()),
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            self.check_node(i, n, prompts, queues, targets)?;
        }
        self.check_reachable()?;
        self.check_input_loops()
    }

    fn node_list(&self) -> String {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        names.join(", ")
    }

    fn check_node(
        &self,
        i: usize,
        n: &Node,
        prompts: &[&str],
        queues: Option<&[&str]>,
        targets: &[&str],
    ) -> Result<(), FlowError> {
        if let Some(p) = n.kind.prompt() {
            if !prompts.contains(&p) {
                return Err(self.err(
                    Some(i),
                    "prompt",
                    format!("unknown prompt \"{p}\""),
                    &format!("the shipped prompts are: {}", prompts.join(", ")),
                ));
            }
        }
        for (key, to) in n.kind.edges() {
            if self.find(to).is_none() {
                return Err(self.err(
                    Some(i),
                    &key,
                    format!("unknown node \"{to}\""),
                    &format!("name one of this flow's nodes ({})", self.node_list()),
                ));
            }
        }
        let zero = |d: Duration| d.is_zero();
        match &n.kind {
            NodeKind::Menu {
                options,
                timeout_after,
                ..
            } => {
                if options.is_empty() {
                    return Err(self.err(
                        Some(i),
                        "options",
                        "a menu without options".into(),
                        "give digit -> node choices, e.g. options = { 1 = \"mandarin\" }, or use a play node",
                    ));
                }
                if let Some(d) = options.keys().find(|d| !is_dtmf(**d)) {
                    return Err(self.err(
                        Some(i),
                        "options",
                        format!("option {d:?} is not a DTMF digit"),
                        "options are single keys: 0-9, *, #, A-D",
                    ));
                }
                if zero(*timeout_after) {
                    return Err(self.err(
                        Some(i),
                        "timeout_secs",
                        "zero timeout".into(),
                        "give the caller at least a second",
                    ));
                }
            }
            NodeKind::Collect {
                min,
                max,
                terminator,
                first_digit_timeout,
                inter_digit_timeout,
                ..
            } => {
                if *min == 0 {
                    return Err(self.err(
                        Some(i),
                        "min",
                        "min is 0".into(),
                        "collect at least one digit",
                    ));
                }
                if min > max {
                    return Err(self.err(
                        Some(i),
                        "min",
                        format!("min ({min}) is greater than max ({max})"),
                        "min is the fewest digits accepted, max the most",
                    ));
                }
                if let Some(t) = terminator.filter(|t| !is_dtmf(*t)) {
                    return Err(self.err(
                        Some(i),
                        "terminator",
                        format!("terminator {t:?} is not a DTMF key"),
                        "use \"#\" (the default), \"*\", or \"\" for none",
                    ));
                }
                if zero(*first_digit_timeout) {
                    return Err(self.err(
                        Some(i),
                        "first_digit_timeout_secs",
                        "zero timeout".into(),
                        "give the caller at least a second",
                    ));
                }
                if zero(*inter_digit_timeout) {
                    return Err(self.err(
                        Some(i),
                        "inter_digit_timeout_secs",
                        "zero timeout".into(),
                        "give the caller at least a second",
                    ));
                }
            }
            NodeKind::Queue { queue, .. } => {
                if let Some(known) = queues.filter(|q| !q.contains(&queue.as_str())) {
                    return Err(self.err(
                        Some(i),
                        "queue",
                        format!("unknown queue \"{queue}\""),
                        &format!("known queues: {}", known.join(", ")),
                    ));
                }
            }
            NodeKind::Transfer { target } if !targets.contains(&target.as_str()) => {
                let known = if targets.is_empty() {
                    "none are defined yet".to_owned()
                } else {
                    targets.join(", ")
                };
                return Err(self.err(
                    Some(i),
                    "target",
                    format!("unknown target \"{target}\""),
                    &format!("define it in a [[targets]] table (known targets: {known})"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Every node is reachable from the entry.
    fn check_reachable(&self) -> Result<(), FlowError> {
        let mut reached = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = self.find(&self.entry).into_iter().collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            for (_, to) in self.nodes[i].kind.edges() {
                if let Some(j) = self.find(to) {
                    stack.push(j);
                }
            }
        }
        match reached.iter().position(|r| !r) {
            Some(i) => Err(self.err(
                Some(i),
                "name",
                format!(
                    "node \"{}\" cannot be reached from the entry node \"{}\"",
                    self.nodes[i].name, self.entry
                ),
                "refer to it from another node, or remove it",
            )),
            None => Ok(()),
        }
    }

    /// No cycle made only of nodes that do not wait (set_tag, goto, hours):
    /// such a loop would spin without ever hearing from the caller.
    fn check_input_loops(&self) -> Result<(), FlowError> {
        // 0 = unvisited, 1 = on the path, 2 = done
        let mut mark = vec![0u8; self.nodes.len()];
        for start in 0..self.nodes.len() {
            if mark[start] != 0 || self.nodes[start].kind.waits() {
                continue;
            }
            // iterative DFS over non-waiting nodes: (node, next edge index)
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = 1;
            while let Some(&mut (node, ref mut edge)) = path.last_mut() {
                let edges = self.nodes[node].kind.edges();
                let Some((key, to)) = edges.get(*edge) else {
                    mark[node] = 2;
                    path.pop();
                    continue;
                };
                *edge += 1;
                let Some(j) = self.find(to) else { continue };
                if self.nodes[j].kind.waits() {
                    continue;
                }
                match mark[j] {
                    0 => {
                        mark[j] = 1;
                        path.push((j, 0));
                    }
                    1 => {
                        let from = path.iter().position(|(n, _)| *n == j).unwrap_or(0);
                        let mut names: Vec<&str> = path[from..]
                            .iter()
                            .map(|(n, _)| self.nodes[*n].name.as_str())
                            .collect();
                        names.push(&self.nodes[j].name);
                        return Err(self.err(
                            Some(node),
                            key,
                            format!(
                                "a loop that never waits for the caller: {}",
                                names.join(" -> ")
                            ),
                            "put a play, menu or collect node in the loop, or break it",
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
