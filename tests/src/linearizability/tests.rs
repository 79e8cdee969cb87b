//! The checker shown to fail on the histories it exists for, and held to two
//! independent checkers (a brute-force search written from the definition, and
//! stateright's `LinearizabilityTester`) on random histories.

use std::collections::HashMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

use super::{Kind, Op, VersionRead, backwards_windows, check};

fn at(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn write(value: &str, from: u64, to: Option<u64>) -> Op {
    Op {
        key: 1,
        kind: Kind::Write,
        value: value.into(),
        invoked: at(from),
        returned: to.map(at),
    }
}

fn read(value: &str, from: u64, to: u64) -> Op {
    Op {
        key: 1,
        kind: Kind::Read,
        value: value.into(),
        invoked: at(from),
        returned: Some(at(to)),
    }
}

fn initial() -> HashMap<i64, String> {
    HashMap::from([(1, "a".to_owned())])
}

#[test]
fn a_read_of_a_value_replaced_before_it_began_is_stale_and_not_linearizable() {
    // b is acknowledged at 20; a read invoked at 30 still returns a.
    let ops = [write("b", 10, Some(20)), read("a", 30, 31)];
    let v = check(&initial(), &ops, &[]);
    assert!(!v.linearizable, "{v:?}");
    assert_eq!((v.stale_reads, v.backwards_reads), (1, 0));
    assert_eq!(v.stale_window, at(10));
    assert!(!v.violations.is_empty());
}

#[test]
fn a_value_that_appears_then_vanishes_is_a_backwards_read() {
    // b is in flight from 10 to 50: one read sees it (done at 21), a later one sees a.
    let ops = [
        write("b", 10, Some(50)),
        read("b", 20, 21),
        read("a", 30, 31),
    ];
    let v = check(&initial(), &ops, &[]);
    assert!(!v.linearizable, "{v:?}");
    assert_eq!((v.stale_reads, v.backwards_reads), (0, 1));
    assert_eq!(v.backwards_window, at(9));
}

#[test]
fn reads_during_a_write_may_see_either_value_while_none_goes_back() {
    let ops = [
        write("b", 10, Some(50)),
        read("a", 12, 14),
        read("b", 20, 21),
        read("b", 30, 31),
        read("b", 60, 61),
        read("a", 5, 40), // concurrent with everything: fine either way
    ];
    let v = check(&initial(), &ops, &[]);
    assert!(v.linearizable, "{v:?}");
    assert_eq!((v.stale_reads, v.backwards_reads), (0, 0));
    assert_eq!((v.ops, v.reads), (6, 5));
}

#[test]
fn a_read_before_its_write_began_or_of_an_unwritten_or_refused_value_fails() {
    let early = [write("b", 10, Some(20)), read("b", 2, 5)];
    assert!(!check(&initial(), &early, &[]).linearizable);
    let unknown = [read("zz", 2, 5)];
    assert!(!check(&initial(), &unknown, &[]).linearizable);
    let refused = [read("r", 2, 5)];
    let v = check(&initial(), &refused, &[(1, "r".to_owned())]);
    assert!(!v.linearizable);
    assert!(v.violations[0].contains("refused"), "{v:?}");
}

#[test]
fn a_write_of_unknown_outcome_may_take_effect_late_or_never() {
    // c never returned: reads may see it at any time after it began, or never.
    let seen = [
        write("b", 0, Some(5)),
        write("c", 10, None),
        read("b", 12, 13),
        read("c", 100, 101),
    ];
    assert!(check(&initial(), &seen, &[]).linearizable);
    let unseen = [
        write("b", 0, Some(5)),
        write("c", 10, None),
        read("b", 100, 101),
    ];
    assert!(check(&initial(), &unseen, &[]).linearizable);
    // ...but once seen, it cannot be unseen for an older value.
    let back = [
        write("b", 0, Some(5)),
        write("c", 10, None),
        read("c", 20, 21),
        read("b", 30, 31),
    ];
    let v = check(&initial(), &back, &[]);
    assert!(!v.linearizable);
    assert_eq!(v.backwards_reads, 1);
}

#[test]
fn keys_are_independent_registers() {
    let mut ops = vec![write("b", 10, Some(20)), read("b", 30, 31)];
    ops.push(Op {
        key: 2,
        ..read("x", 30, 31)
    });
    let init = HashMap::from([(1, "a".to_owned()), (2, "x".to_owned())]);
    let v = check(&init, &ops, &[]);
    assert!(v.linearizable, "{v:?}");
    assert_eq!(v.ops, 3);
}

/// One thread's operation in a random history, with event steps for times.
#[derive(Clone, Debug)]
struct Planned {
    thread: usize,
    write: Option<u32>,
    read: Option<u32>,
    invoked: u64,
    returned: Option<u64>,
}

/// A random history of `threads` threads, each running operations one after another:
/// every step one thread invokes or returns (so no two events share a time). Reads
/// return a random value among the initial one (0) and those written so far, or now
/// and then one that is written only later, or never.
fn random_history(rng: &mut impl Rng, threads: usize, events: usize) -> Vec<Planned> {
    let mut done = Vec::new();
    let mut open: Vec<Option<Planned>> = vec![None; threads];
    let mut written: Vec<u32> = vec![0];
    let mut next_value = 1;
    for step in 0..events as u64 {
        let t = rng.random_range(0..threads);
        match open[t].take() {
            None => {
                let write = rng.random_bool(0.4).then(|| {
                    next_value += 1;
                    next_value - 1
                });
                if let Some(w) = write {
                    written.push(w);
                }
                open[t] = Some(Planned {
                    thread: t,
                    write,
                    read: None,
                    invoked: step,
                    returned: None,
                });
            }
            Some(mut op) => {
                op.returned = Some(step);
                if op.write.is_none() {
                    op.read = Some(match rng.random_range(0..20) {
                        0 => 999,        // never written
                        1 => next_value, // written later, if at all
                        _ => written[rng.random_range(0..written.len())],
                    });
                }
                done.push(op);
            }
        }
    }
    // Writes still in flight stay (outcome unknown); reads in flight returned nothing.
    done.extend(open.into_iter().flatten().filter(|op| op.write.is_some()));
    done
}

fn as_ops(history: &[Planned]) -> Vec<Op> {
    history
        .iter()
        .map(|p| Op {
            key: 1,
            kind: if p.write.is_some() {
                Kind::Write
            } else {
                Kind::Read
            },
            value: p.write.or(p.read).unwrap_or_default().to_string(),
            invoked: Duration::from_nanos(p.invoked),
            returned: p.returned.map(Duration::from_nanos),
        })
        .collect()
}

/// Wing and Gong's search, straight from the definition: pick as next any operation
/// no remaining one returned before, apply it to the register, backtrack on a wrong
/// read. A write still in flight may also be left out.
fn brute_force(history: &[Planned]) -> bool {
    fn search(rest: &[Planned], value: u32) -> bool {
        if rest.iter().all(|op| op.returned.is_none()) {
            return true; // only writes in flight left: they may never happen
        }
        for (i, op) in rest.iter().enumerate() {
            let minimal = rest
                .iter()
                .all(|o| o.returned.is_none_or(|r| r > op.invoked));
            if !minimal {
                continue;
            }
            let next = match (op.write, op.read) {
                (Some(w), _) => w,
                (None, Some(r)) if r == value => value,
                _ => continue,
            };
            let mut others = rest.to_vec();
            others.remove(i);
            if search(&others, next) {
                return true;
            }
        }
        false
    }
    search(history, 0)
}

fn stateright(history: &[Planned]) -> bool {
    let mut events: Vec<(u64, usize, bool)> = Vec::new(); // (time, op, is_return)
    for (i, op) in history.iter().enumerate() {
        events.push((op.invoked, i, false));
        if let Some(r) = op.returned {
            events.push((r, i, true));
        }
    }
    events.sort_unstable();
    let mut tester = LinearizabilityTester::new(Register(0u32));
    for (_, i, is_return) in events {
        let op = &history[i];
        let result = if is_return {
            let ret = match op.read {
                Some(v) => RegisterRet::ReadOk(v),
                None => RegisterRet::WriteOk,
            };
            tester.on_return(op.thread, ret).map(drop)
        } else {
            let call = match op.write {
                Some(v) => RegisterOp::Write(v),
                None => RegisterOp::Read,
            };
            tester.on_invoke(op.thread, call).map(drop)
        };
        result.expect("a well-formed history");
    }
    tester.serialized_history().is_some()
}

#[test]
fn the_checker_agrees_with_a_brute_force_search_and_with_stateright_on_random_histories() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0114_eea7);
    let initial = HashMap::from([(1, "0".to_owned())]);
    let (mut yes, mut no) = (0, 0);
    for round in 0..4000 {
        let threads = 2 + round % 3;
        let history = random_history(&mut rng, threads, 6 + round % 9);
        let ours = check(&initial, &as_ops(&history), &[]).linearizable;
        let reference = brute_force(&history);
        assert_eq!(ours, reference, "brute force disagrees on {history:#?}");
        assert_eq!(
            ours,
            stateright(&history),
            "stateright disagrees on {history:#?}"
        );
        if ours { yes += 1 } else { no += 1 }
    }
    // Both kinds of history were generated in numbers.
    assert!(yes > 500 && no > 500, "{yes} linearizable, {no} not");
}

#[test]
fn every_stale_or_backwards_read_makes_a_history_fail() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let initial = HashMap::from([(1, "0".to_owned())]);
    for round in 0..3000 {
        let history = random_history(&mut rng, 2 + round % 3, 8 + round % 7);
        let v = check(&initial, &as_ops(&history), &[]);
        if v.stale_reads + v.backwards_reads > 0 {
            assert!(!v.linearizable, "{history:#?} {v:?}");
        }
    }
}

#[test]
fn a_version_read_after_a_newer_one_was_returned_goes_back_for_as_long() {
    let t0 = std::time::Instant::now();
    let r = |key, from: u64, to: u64, version| VersionRead {
        key,
        began: t0 + at(from),
        ended: t0 + at(to),
        version,
    };
    let reads = [
        r(1, 0, 2, 1),
        r(1, 3, 4, 3),   // newer
        r(1, 5, 6, 2),   // older than the read done at 4: back by 1 ms
        r(1, 4, 9, 1),   // began at 4, when v3's read ended: overlapping, fine
        r(2, 10, 11, 1), // another key
        r(1, 20, 21, 3),
    ];
    let w = backwards_windows(&reads);
    assert_eq!(w, [None, None, Some(at(1)), None, None, None]);
}
