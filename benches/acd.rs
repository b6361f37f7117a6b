//! ACD dispatch cost per event at a big centre's scale: 2,000 agents (three
//! skills each of 25), 50 queues (one skill each, max wait, an escalation
//! step and comfort announcements, so 5,000 waiting calls keep 20,000
//! deadlines armed), 5,000 waiting calls. Only the event itself is timed
//! (`iter_custom`); restoring the steady state around it is not.
//!
//! - `agent_ready_offer`: a not-ready agent becomes ready and is offered the
//!   best call of the 50 queues it may serve;
//! - `enqueue_ready_agent`: a call enters a queue with 200 ready agents
//!   (the other queues' 5,000 calls wait for busy agents) and is offered;
//! - `enqueue_rare_skill`: the same with a call needing a skill only one in
//!   twenty ready agents has (the ready set is scanned in idle order);
//! - `answer_hangup_cycle`: answered + hung_up, the agent ready at once
//!   (no wrap-up) and offered the next of the 5,000 calls.
//!
//! `cargo bench --bench acd`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline::acd::{
    Acd, AcdSpec, AgentIx, AgentSpec, Escalation, Output, QueueIx, QueueSpec, Step, Strategy,
};
use hotline::ids::CallId;
use hotline::time::{Duration, Instant};
use std::hint::black_box;

const AGENTS: u32 = 2_000;
const QUEUES: u32 = 50;
const WAITING: u64 = 5_000;
const SKILLS: u32 = 25;
/// Agents 1800.. have only the "special" skill (and every 20th "rare").
const SPECIAL_FROM: u32 = 1_800;

fn spec() -> AcdSpec {
    let agents = (0..AGENTS)
        .map(|i| AgentSpec {
            id: format!("{}", 10_000 + i),
            tenant: "city".into(),
            skills: if i >= SPECIAL_FROM {
                let mut s = vec![("special".to_owned(), 3)];
                if i % 20 == 0 {
                    s.push(("rare".to_owned(), 1));
                }
                s
            } else {
                [7, 11, 13]
                    .iter()
                    .enumerate()
                    .map(|(k, m)| {
                        (
                            format!("s{}", (i * m + k as u32) % SKILLS),
                            2 + (i % 4) as u8,
                        )
                    })
                    .collect()
            },
            groups: vec![],
            always_reachable: true,
        })
        .collect();
    let queues = (0..QUEUES)
        .map(|i| QueueSpec {
            name: format!("q{i}"),
            tenant: "city".into(),
            skills: vec![(
                if i == QUEUES - 1 {
                    "special".to_owned()
                } else {
                    format!("s{}", i % SKILLS)
                },
                2,
            )],
            groups: vec![],
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::ZERO,
            max_wait: Some(Duration::from_secs(3600)),
            max_length: None,
            escalation: vec![Escalation {
                after: Duration::from_secs(600),
                step: Step::MinLevel(1),
            }],
            early_escalation: None,
            comfort_every: Some(Duration::from_secs(45)),
        })
        .collect();
    AcdSpec {
        agents,
        queues,
        not_ready_reasons: vec!["break".into()],
        service_window: Duration::from_secs(1800),
    }
}

/// Every agent logged in and on a break; `WAITING` calls in queues
/// 0..`queues` round robin; returns the ACD, its `now` and the next call id.
fn centre(queues: u32) -> (Acd, Instant, u64) {
    let t0 = hotline::time::now();
    let mut acd = Acd::new(spec(), t0);
    for a in 0..AGENTS {
        acd.login(AgentIx(a), t0).expect("login");
        acd.not_ready(AgentIx(a), "break", t0).expect("break");
    }
    for c in 0..WAITING {
        let q = QueueIx((c % u64::from(queues)) as u32);
        acd.enqueue(CallId(c), q, &[], (c % 3) as u8, t0)
            .expect("enqueue");
    }
    drain(&mut acd);
    (acd, t0 + Duration::from_secs(1), WAITING)
}

fn drain(acd: &mut Acd) -> Option<(CallId, AgentIx, QueueIx)> {
    let mut offer = None;
    while let Some(o) = acd.poll_output() {
        if let Output::Offer { call, agent, queue } = o {
            offer = Some((call, agent, queue));
        }
        black_box(&o);
    }
    offer
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = hotline::time::now();
    f();
    hotline::time::now() - start
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("acd");
    g.throughput(Throughput::Elements(1));

    g.bench_function("agent_ready_offer", |b| {
        let (mut acd, now, mut next) = centre(QUEUES);
        let mut k = 0u32;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let a = AgentIx(k % SPECIAL_FROM);
                k += 1;
                let mut offer = None;
                total += timed(|| {
                    acd.ready(a, now).expect("ready");
                    offer = drain(&mut acd);
                });
                // back to the steady state: the agent goes on a break after
                // this call, the caller leaves, a new caller arrives in the
                // same queue
                let Some((call, agent, q)) = offer else {
                    panic!(
                        "no offer for {a:?}: {:?}, {:?}",
                        acd.agent_state(a),
                        acd.spec().agents[a.0 as usize].skills
                    )
                };
                acd.not_ready(agent, "break", now).expect("break");
                acd.abandon(call, now);
                acd.enqueue(CallId(next), q, &[], (next % 3) as u8, now)
                    .expect("enqueue");
                next += 1;
                drain(&mut acd);
            }
            total
        });
    });

    for (name, extra) in [
        ("enqueue_ready_agent", vec![]),
        ("enqueue_rare_skill", vec!["rare".to_owned()]),
    ] {
        g.bench_function(name, |b| {
            let (mut acd, now, mut next) = centre(QUEUES - 1);
            for a in SPECIAL_FROM..AGENTS {
                acd.ready(AgentIx(a), now).expect("ready");
            }
            assert!(drain(&mut acd).is_none(), "nothing for the special agents");
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let call = CallId(next);
                    next += 1;
                    let mut offer = None;
                    total += timed(|| {
                        acd.enqueue(call, QueueIx(QUEUES - 1), &extra, 0, now)
                            .expect("enqueue");
                        offer = drain(&mut acd);
                    });
                    assert_eq!(offer.map(|o| o.0), Some(call));
                    acd.abandon(call, now);
                    drain(&mut acd);
                }
                total
            });
        });
    }

    g.bench_function("answer_hangup_cycle", |b| {
        let (mut acd, now, mut next) = centre(QUEUES);
        acd.ready(AgentIx(0), now).expect("ready");
        let mut offer = drain(&mut acd).expect("an offer");
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (call, agent, q) = offer;
                total += timed(|| {
                    assert!(acd.answered(call, agent, now));
                    acd.hung_up(call, now);
                    if let Some(o) = drain(&mut acd) {
                        offer = o;
                    }
                });
                assert_ne!(offer.0, call, "offered the next call");
                acd.enqueue(CallId(next), q, &[], (next % 3) as u8, now)
                    .expect("enqueue");
                next += 1;
                drain(&mut acd);
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
