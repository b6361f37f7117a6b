//! IVR flows in virtual time: every node kind and branch of the [`Runner`],
//! and each refusal of [`Flow::validate`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::time::Instant;

// ------------------------------------------------------------ flow builders

fn node(name: &str, kind: NodeKind) -> Node {
    Node {
        name: name.to_owned(),
        kind,
    }
}

fn play(name: &str, prompt: &str, barge_in: bool, next: &str) -> Node {
    node(
        name,
        NodeKind::Play {
            prompt: prompt.into(),
            barge_in,
            next: next.into(),
        },
    )
}

fn menu(name: &str, options: &[(char, &str)], timeout: &str, invalid: &str, retries: u8) -> Node {
    node(
        name,
        NodeKind::Menu {
            prompt: "survey".into(),
            barge_in: true,
            options: options.iter().map(|(d, n)| (*d, (*n).to_owned())).collect(),
            timeout_after: Duration::from_secs(5),
            timeout: timeout.into(),
            invalid: invalid.into(),
            retries,
        },
    )
}

fn collect(name: &str, min: u8, max: u8, retries: u8) -> Node {
    node(
        name,
        NodeKind::Collect {
            prompt: "greeting".into(),
            barge_in: true,
            min,
            max,
            terminator: Some('#'),
            first_digit_timeout: Duration::from_secs(5),
            inter_digit_timeout: Duration::from_secs(3),
            retries,
            tag: Some("account".into()),
            next: "ok".into(),
            fail: "bad".into(),
        },
    )
}

fn queue(name: &str, q: &str, skills: &[&str]) -> Node {
    node(
        name,
        NodeKind::Queue {
            queue: q.into(),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            priority: 0,
        },
    )
}

fn hangup(name: &str) -> Node {
    node(name, NodeKind::Hangup { cause: None })
}

fn set_tag(name: &str, key: &str, value: &str, next: &str) -> Node {
    node(
        name,
        NodeKind::SetTag {
            key: key.into(),
            value: value.into(),
            next: next.into(),
        },
    )
}

fn goto(name: &str, next: &str) -> Node {
    node(name, NodeKind::Goto { next: next.into() })
}

fn hours(name: &str, schedule: &[&str], open: &str, closed: &str) -> Node {
    let schedule = match Schedule::parse(schedule) {
        Ok(s) => s,
        Err(e) => panic!("{schedule:?}: {e:?}"),
    };
    node(
        name,
        NodeKind::Hours {
            schedule,
            open: open.into(),
            closed: closed.into(),
        },
    )
}

fn flow(entry: &str, nodes: Vec<Node>) -> Arc<Flow> {
    let f = Flow::new("f", entry, nodes);
    if let Err(e) = f.validate(&PROMPTS, None, &["water"]) {
        panic!("test flow does not validate: {e}");
    }
    Arc::new(f)
}

// --------------------------------------------------------------- the harness

/// A runner in virtual time: inputs at `t0 + elapsed`, actions collected.
struct Sim {
    runner: Runner,
    t0: Instant,
    now: Instant,
    local: LocalTime,
}

const MONDAY_10: LocalTime = LocalTime {
    weekday: Weekday::Mon,
    minute: 600,
};

impl Sim {
    fn new(flow: Arc<Flow>) -> Self {
        let t0 = crate::time::now();
        Self {
            runner: Runner::new(flow, t0),
            t0,
            now: t0,
            local: MONDAY_10,
        }
    }

    fn input(&mut self, input: Input) -> Vec<Action> {
        self.runner.handle_input(input, self.now, self.local);
        let mut out = Vec::new();
        while let Some(a) = self.runner.poll_action() {
            out.push(a);
        }
        out
    }

    fn start(&mut self) -> Vec<Action> {
        self.input(Input::Started)
    }

    fn done(&mut self) -> Vec<Action> {
        self.input(Input::PlaybackDone { interrupted: false })
    }

    fn digit(&mut self, d: char) -> Vec<Action> {
        self.input(Input::Digit(d))
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
    }

    /// Advance to the runner's deadline and fire it.
    fn fire(&mut self) -> Vec<Action> {
        let Some(at) = self.runner.poll_timeout() else {
            panic!("no timeout armed at {:?}", self.runner.current_node());
        };
        assert!(at >= self.now, "deadline in the past");
        self.now = at;
        self.input(Input::Timeout)
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

fn p(prompt: &str, barge_in: bool) -> Action {
    Action::Play {
        prompt: prompt.into(),
        barge_in,
    }
}

fn q(name: &str, skills: &[&str], tags: &[(&str, &str)]) -> Action {
    Action::Queue {
        queue: name.into(),
        skills: skills.iter().map(|s| (*s).to_owned()).collect(),
        priority: 0,
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn hung_up() -> Action {
    Action::Hangup { cause: None }
}

// -------------------------------------------------------------- the runner

/// The GB/T 33358 12345 flow: greeting, recording notice, queue; no menu.
fn intake() -> Arc<Flow> {
    flow(
        "greeting",
        vec![
            play("greeting", "greeting", false, "notice"),
            play("notice", "recording_notice", false, "general"),
            queue("general", "general", &[]),
        ],
    )
}

#[test]
fn intake_plays_two_prompts_then_queues() {
    let mut s = Sim::new(intake());
    assert_eq!(s.input(Input::Timeout), [], "nothing before Started");
    assert_eq!(s.start(), [p("greeting", false)]);
    assert_eq!(s.runner.poll_timeout(), None, "a prompt has no deadline");
    assert_eq!(s.start(), [], "a second Started is ignored");
    // digits during a prompt without barge-in are dropped
    assert_eq!(s.digit('1'), []);
    assert_eq!(s.done(), [p("recording_notice", false)]);
    assert_eq!(s.done(), [q("general", &[], &[])]);
    assert!(s.runner.is_done());
    assert_eq!(s.runner.dropped_digits(), 1);
    assert_eq!(s.done(), [], "nothing after the end");
    assert_eq!(s.digit('2'), []);
}

/// The dialect menu: 1 Mandarin, 2 Cantonese, each a skill; timeout -> default.
fn dialect(retries: u8) -> Arc<Flow> {
    flow(
        "menu",
        vec![
            menu(
                "menu",
                &[('1', "mandarin"), ('2', "cantonese")],
                "default",
                "default",
                retries,
            ),
            set_tag("mandarin", "dialect", "mandarin", "q-mandarin"),
            queue("q-mandarin", "health", &["mandarin"]),
            set_tag("cantonese", "dialect", "cantonese", "q-cantonese"),
            queue("q-cantonese", "health", &["cantonese"]),
            queue("default", "health", &[]),
        ],
    )
}

#[test]
fn menu_choice_after_the_prompt() {
    let mut s = Sim::new(dialect(1));
    assert_eq!(s.start(), [p("survey", true)]);
    assert_eq!(s.done(), []);
    assert_eq!(
        s.runner.poll_timeout(),
        Some(s.now + Duration::from_secs(5))
    );
    s.advance(2);
    assert_eq!(
        s.digit('2'),
        [q("health", &["cantonese"], &[("dialect", "cantonese")])]
    );
    assert_eq!(
        s.runner.tags().get("dialect").map(String::as_str),
        Some("cantonese")
    );
}

#[test]
fn menu_barge_in_digit_is_the_choice() {
    let mut s = Sim::new(dialect(1));
    s.start();
    assert_eq!(
        s.digit('1'),
        [
            Action::StopPlay,
            q("health", &["mandarin"], &[("dialect", "mandarin")])
        ]
    );
    // the media plane's PlaybackDone { interrupted } after the barge-in
    assert_eq!(s.input(Input::PlaybackDone { interrupted: true }), []);
}

#[test]
fn menu_invalid_key_retries_then_takes_the_invalid_branch() {
    let f = flow(
        "menu",
        vec![
            menu("menu", &[('1', "one")], "timeout", "invalid", 1),
            queue("one", "one", &[]),
            queue("timeout", "timeout", &[]),
            queue("invalid", "invalid", &[]),
        ],
    );
    let mut s = Sim::new(f);
    s.start();
    s.done();
    assert_eq!(s.digit('9'), [p("survey", true)], "one replay");
    assert_eq!(
        s.runner.poll_timeout(),
        None,
        "no deadline while it replays"
    );
    s.done();
    assert_eq!(s.digit('8'), [q("invalid", &[], &[])]);
}

#[test]
fn menu_invalid_barge_in_during_the_replay_counts() {
    let f = flow(
        "menu",
        vec![
            menu("menu", &[('1', "one")], "timeout", "invalid", 1),
            queue("one", "one", &[]),
            queue("timeout", "timeout", &[]),
            queue("invalid", "invalid", &[]),
        ],
    );
    let mut s = Sim::new(f);
    s.start();
    assert_eq!(s.digit('9'), [Action::StopPlay, p("survey", true)]);
    assert_eq!(s.digit('1'), [Action::StopPlay, q("one", &[], &[])]);
}

#[test]
fn menu_timeout_takes_the_timeout_branch() {
    let mut s = Sim::new(dialect(2));
    s.start();
    s.advance(7);
    s.done();
    s.advance(4);
    assert_eq!(s.input(Input::Timeout), [], "an early Timeout is ignored");
    assert_eq!(s.fire(), [q("health", &[], &[])]);
    assert_eq!(s.elapsed(), Duration::from_secs(12));
}

#[test]
fn play_with_barge_in_keeps_the_digit_for_the_menu() {
    let f = flow(
        "hello",
        vec![
            play("hello", "greeting", true, "menu"),
            menu("menu", &[('1', "one"), ('2', "two")], "one", "one", 0),
            queue("one", "one", &[]),
            queue("two", "two", &[]),
        ],
    );
    let mut s = Sim::new(f);
    assert_eq!(s.start(), [p("greeting", true)]);
    // '2' stops the greeting; the menu's barge-in prompt is skipped and takes it
    assert_eq!(s.digit('2'), [Action::StopPlay, q("two", &[], &[])]);
}

#[test]
fn type_ahead_is_dropped_by_a_prompt_without_barge_in() {
    let f = flow(
        "hello",
        vec![
            play("hello", "greeting", true, "notice"),
            play("notice", "recording_notice", false, "menu"),
            menu("menu", &[('1', "one")], "t", "t", 0),
            queue("one", "one", &[]),
            queue("t", "t", &[]),
        ],
    );
    let mut s = Sim::new(f);
    s.start();
    assert_eq!(
        s.digit('1'),
        [Action::StopPlay, p("recording_notice", false)]
    );
    assert_eq!(s.runner.dropped_digits(), 1);
    assert_eq!(s.done(), [p("survey", true)]);
    s.done();
    assert_eq!(s.fire(), [q("t", &[], &[])]);
}

fn collector(retries: u8) -> Arc<Flow> {
    flow(
        "c",
        vec![
            collect("c", 2, 4, retries),
            queue("ok", "ok", &[]),
            hangup("bad"),
        ],
    )
}

#[test]
fn collect_ends_at_the_terminator() {
    let mut s = Sim::new(collector(0));
    s.start();
    s.done();
    assert_eq!(s.digit('1'), []);
    assert_eq!(s.digit('2'), []);
    assert_eq!(s.digit('3'), []);
    assert_eq!(s.digit('#'), [q("ok", &[], &[("account", "123")])]);
    assert_eq!(s.runner.digits(), Some("123"));
}

#[test]
fn collect_ends_at_max_digits_and_barge_in_digit_counts() {
    let mut s = Sim::new(collector(0));
    s.start();
    assert_eq!(s.digit('9'), [Action::StopPlay]);
    s.digit('8');
    s.digit('7');
    assert_eq!(s.digit('6'), [q("ok", &[], &[("account", "9876")])]);
}

#[test]
fn collect_inter_digit_timeout_accepts_enough_digits() {
    let mut s = Sim::new(collector(0));
    s.start();
    s.done();
    assert_eq!(
        s.runner.poll_timeout(),
        Some(s.now + Duration::from_secs(5))
    );
    s.advance(1);
    s.digit('4');
    assert_eq!(
        s.runner.poll_timeout(),
        Some(s.now + Duration::from_secs(3)),
        "inter-digit timeout after the first digit"
    );
    s.advance(2);
    s.digit('2');
    assert_eq!(s.fire(), [q("ok", &[], &[("account", "42")])]);
    assert_eq!(s.elapsed(), Duration::from_secs(6));
}

#[test]
fn collect_fails_after_its_retries() {
    let mut s = Sim::new(collector(1));
    s.start();
    s.done();
    // too few digits, then the inter-digit timeout: replay
    s.digit('1');
    assert_eq!(s.fire(), [p("greeting", true)]);
    s.done();
    // too few before the terminator, second attempt: the fail branch
    s.digit('1');
    assert_eq!(s.digit('#'), [hung_up()]);
    assert_eq!(s.runner.digits(), None);
    assert!(s.runner.tags().is_empty());
}

#[test]
fn collect_first_digit_timeout_fails() {
    let mut s = Sim::new(collector(0));
    s.start();
    s.done();
    assert_eq!(s.fire(), [hung_up()]);
}

fn office(schedule: &[&str]) -> Arc<Flow> {
    flow(
        "h",
        vec![
            hours("h", schedule, "open", "closed"),
            queue("open", "general", &[]),
            play("closed", "blocked", false, "bye"),
            hangup("bye"),
        ],
    )
}

#[test]
fn hours_open_and_closed_at_given_local_times() {
    let cases = [
        (Weekday::Mon, 8, 29, false),
        (Weekday::Mon, 8, 30, true),
        (Weekday::Fri, 17, 29, true),
        (Weekday::Fri, 17, 30, false),
        (Weekday::Sat, 10, 0, true),
        (Weekday::Sat, 12, 0, false),
        (Weekday::Sun, 10, 0, false),
    ];
    for (day, h, m, open) in cases {
        let mut s = Sim::new(office(&["Mon-Fri 08:30-17:30", "Sat 09:00-12:00"]));
        s.local = LocalTime::new(day, h, m);
        let want = if open {
            q("general", &[], &[])
        } else {
            p("blocked", false)
        };
        assert_eq!(s.start(), [want], "{day:?} {h}:{m}");
    }
    let mut s = Sim::new(office(&["7x24"]));
    s.local = LocalTime::new(Weekday::Sun, 3, 0);
    assert_eq!(s.start(), [q("general", &[], &[])]);
}

#[test]
fn schedule_syntax() {
    let ok = |e: &[&str]| Schedule::parse(e).is_ok();
    assert!(ok(&["7x24"]));
    assert!(ok(&["Mon,Wed,Fri-Sun 00:00-24:00"]));
    assert!(!ok(&[]));
    assert!(!ok(&["7x24", "Mon 08:00-09:00"]));
    assert!(!ok(&["Mon 09:00-08:00"]));
    assert!(!ok(&["Fri-Mon 08:00-09:00"]));
    assert!(!ok(&["Mon 8:00-9:00"]));
    assert!(!ok(&["Mon 08:60-09:00"]));
    assert!(!ok(&["Mon 08:00-24:01"]));
    assert!(!ok(&["Monday 08:00-09:00"]));
    assert_eq!(
        Schedule::parse(&["Mon 08:00-09:00", "nope"]).map_err(|e| e.0),
        Err(1)
    );
}

#[test]
fn set_tag_and_goto_carry_tags_to_the_queue() {
    let f = flow(
        "a",
        vec![
            set_tag("a", "line", "12319", "b"),
            goto("b", "c"),
            set_tag("c", "topic", "water", "d"),
            node(
                "d",
                NodeKind::Queue {
                    queue: "general".into(),
                    skills: vec!["water".into()],
                    priority: 7,
                },
            ),
        ],
    );
    let mut s = Sim::new(f);
    assert_eq!(
        s.start(),
        [Action::Queue {
            queue: "general".into(),
            skills: vec!["water".into()],
            priority: 7,
            tags: [("line", "12319"), ("topic", "water")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }]
    );
}

#[test]
fn transfer_and_hangup_end_the_flow() {
    let f = flow(
        "m",
        vec![
            menu("m", &[('1', "x"), ('2', "h")], "h", "h", 0),
            node(
                "x",
                NodeKind::Transfer {
                    target: "water".into(),
                },
            ),
            node(
                "h",
                NodeKind::Hangup {
                    cause: Some("caller_choice".into()),
                },
            ),
        ],
    );
    let mut s = Sim::new(Arc::clone(&f));
    s.start();
    s.done();
    assert_eq!(
        s.digit('1'),
        [Action::Transfer {
            target: "water".into(),
            tags: BTreeMap::new()
        }]
    );
    let mut s = Sim::new(f);
    s.start();
    s.done();
    assert_eq!(
        s.digit('2'),
        [Action::Hangup {
            cause: Some("caller_choice".into())
        }]
    );
    assert_eq!(s.runner.poll_timeout(), None);
}

#[test]
fn an_unvalidated_broken_flow_hangs_up_instead_of_spinning() {
    let looped = Arc::new(Flow::new("f", "a", vec![goto("a", "b"), goto("b", "a")]));
    let mut s = Sim::new(looped);
    assert_eq!(
        s.start(),
        [Action::Hangup {
            cause: Some(FLOW_ERROR.into())
        }]
    );
    let dangling = Arc::new(Flow::new("f", "nowhere", vec![hangup("a")]));
    let mut s = Sim::new(dangling);
    assert_eq!(
        s.start(),
        [Action::Hangup {
            cause: Some(FLOW_ERROR.into())
        }]
    );
}

// -------------------------------------------------------------- validation

fn refused(entry: &str, nodes: Vec<Node>) -> FlowError {
    match Flow::new("f", entry, nodes).validate(&PROMPTS, Some(&["general"]), &["water"]) {
        Ok(()) => panic!("should be refused"),
        Err(e) => e,
    }
}

fn at(e: &FlowError, node: Option<usize>, key: &str, message: &str) {
    assert_eq!(e.flow, "f");
    assert_eq!(e.node.as_ref().map(|n| n.0), node, "{e}");
    assert_eq!(e.key, key, "{e}");
    assert!(e.message.contains(message), "{e}\nshould say {message}");
    assert!(e.help.is_some(), "{e}");
}

#[test]
fn validate_refuses_each_error() {
    let e = refused("a", vec![play("a", "welcome", false, "b"), hangup("b")]);
    at(&e, Some(0), "prompt", "unknown prompt \"welcome\"");
    assert!(e
        .to_string()
        .starts_with("flow \"f\", node \"a\", key `prompt`"));

    let e = refused("a", vec![play("a", "greeting", false, "c"), hangup("b")]);
    at(&e, Some(0), "next", "unknown node \"c\"");

    let e = refused("x", vec![hangup("a")]);
    at(&e, None, "entry", "unknown node \"x\"");

    let e = refused("a", vec![hangup("a"), hangup("b")]);
    at(&e, Some(1), "name", "cannot be reached");

    let e = refused("a", vec![hangup("a"), hangup("a")]);
    at(&e, Some(1), "name", "duplicate node name");

    let e = refused("a", vec![]);
    at(&e, None, "nodes", "no nodes");

    let e = refused(
        "a",
        vec![
            set_tag("a", "k", "v", "b"),
            hours("b", &["7x24"], "c", "a"),
            goto("c", "a"),
        ],
    );
    at(&e, Some(2), "next", "a -> b -> c -> a");

    let e = refused(
        "m",
        vec![
            menu("m", &[('1', "a"), ('x', "a")], "a", "a", 0),
            hangup("a"),
        ],
    );
    at(&e, Some(0), "options", "not a DTMF digit");

    let e = refused("m", vec![menu("m", &[], "a", "a", 0), hangup("a")]);
    at(&e, Some(0), "options", "without options");

    let e = refused(
        "m",
        vec![menu("m", &[('1', "a")], "zz", "a", 0), hangup("a")],
    );
    at(&e, Some(0), "timeout", "unknown node \"zz\"");

    let e = refused(
        "m",
        vec![menu("m", &[('#', "zz")], "a", "a", 0), hangup("a")],
    );
    at(&e, Some(0), "options.\"#\"", "unknown node \"zz\"");

    let mut c = collect("c", 5, 4, 0);
    let e = refused("c", vec![c.clone(), hangup("ok"), hangup("bad")]);
    at(&e, Some(0), "min", "min (5) is greater than max (4)");
    if let NodeKind::Collect { min, .. } = &mut c.kind {
        *min = 0;
    }
    let e = refused("c", vec![c.clone(), hangup("ok"), hangup("bad")]);
    at(&e, Some(0), "min", "min is 0");
    if let NodeKind::Collect {
        min, terminator, ..
    } = &mut c.kind
    {
        *min = 1;
        *terminator = Some('x');
    }
    let e = refused("c", vec![c, hangup("ok"), hangup("bad")]);
    at(&e, Some(0), "terminator", "not a DTMF key");

    let e = refused("q", vec![queue("q", "nope", &[])]);
    at(&e, Some(0), "queue", "unknown queue \"nope\"");

    let e = refused(
        "t",
        vec![node(
            "t",
            NodeKind::Transfer {
                target: "gas".into(),
            },
        )],
    );
    at(&e, Some(0), "target", "unknown target \"gas\"");
    assert!(e.help.as_deref().is_some_and(|h| h.contains("water")));
}

#[test]
fn loops_through_a_prompt_are_fine() {
    let f = Flow::new(
        "f",
        "m",
        vec![
            menu("m", &[('1', "t"), ('9', "m")], "again", "a", 0),
            set_tag("again", "k", "v", "m"),
            set_tag("t", "k", "v", "a"),
            hangup("a"),
        ],
    );
    assert_eq!(f.validate(&PROMPTS, None, &[]), Ok(()));
}

#[test]
fn prompts_match_the_shipped_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mut shipped: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".wav"))
                .map(str::to_owned)
        })
        .collect();
    shipped.sort();
    let mut listed: Vec<String> = PROMPTS.iter().map(|p| (*p).to_owned()).collect();
    listed.sort();
    assert_eq!(shipped, listed, "ivr::PROMPTS and prompts/*.wav differ");
}

#[test]
fn fast_typing_each_digit_is_consumed_once_in_order() {
    let f = flow(
        "m",
        vec![
            menu("m", &[('1', "c")], "bad", "bad", 0),
            collect("c", 1, 2, 0),
            queue("ok", "ok", &[]),
            hangup("bad"),
        ],
    );
    let mut s = Sim::new(f);
    s.start();
    // '1' barges into the menu prompt and chooses; the collect prompt starts
    assert_eq!(s.digit('1'), [Action::StopPlay, p("greeting", true)]);
    // the menu prompt's PlaybackDone { interrupted } must not end the collect prompt
    assert_eq!(s.input(Input::PlaybackDone { interrupted: true }), []);
    assert_eq!(s.runner.current_node(), Some("c"));
    // '2' and '3' go to the collect, not to the menu again
    assert_eq!(s.digit('2'), [Action::StopPlay]);
    assert_eq!(s.digit('3'), [q("ok", &[], &[("account", "23")])]);
}
