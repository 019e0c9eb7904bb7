//! The checker on hand-written histories (linearizable ones pass, each kind
//! of planted violation is caught) and on random ones generated from a real
//! sequential execution (always pass; with one read made stale, always fail).

use orbit_lincheck::{KeyVerdict, Limits, Op, Operation, Outcome, check, check_key};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::process::{Command, Stdio};

fn put(id: u64, client: &str, key: &str, value: &str, call: u64, ret: Option<u64>) -> Operation {
    Operation { id, client: client.into(), key: key.into(), op: Op::Put(value.into()), output: None, call, ret }
}

fn get(id: u64, client: &str, key: &str, read: Option<&str>, call: u64, ret: u64) -> Operation {
    let output = Some(read.map(str::to_owned));
    Operation { id, client: client.into(), key: key.into(), op: Op::Get, output, call, ret: Some(ret) }
}

fn delete(id: u64, client: &str, key: &str, call: u64, ret: Option<u64>) -> Operation {
    Operation { id, client: client.into(), key: key.into(), op: Op::Delete, output: None, call, ret }
}

fn verdict(ops: &[Operation]) -> KeyVerdict {
    let refs: Vec<&Operation> = ops.iter().collect();
    check_key(&refs, Limits::default())
}

fn witness_ids(ops: &[Operation]) -> Vec<u64> {
    match check(ops, Limits::default()) {
        Outcome::Violation(v) => {
            let mut ids: Vec<u64> = v.witness.iter().map(|o| o.id).collect();
            ids.sort();
            ids
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn a_sequential_history_passes() {
    let ops = vec![
        get(1, "a", "k", None, 0, 5),
        put(2, "a", "k", "v1", 10, Some(20)),
        get(3, "b", "k", Some("v1"), 30, 40),
        delete(4, "a", "k", 50, Some(60)),
        get(5, "b", "k", None, 70, 80),
    ];
    assert_eq!(verdict(&ops), KeyVerdict::Linearizable);
}

#[test]
fn reads_overlapping_a_write_may_see_either_value_but_not_go_back() {
    let ops = vec![
        put(1, "w", "k", "v1", 0, Some(100)),
        get(2, "a", "k", None, 10, 20),
        get(3, "b", "k", Some("v1"), 30, 40),
        get(4, "c", "k", Some("v1"), 35, 90),
    ];
    assert_eq!(verdict(&ops), KeyVerdict::Linearizable);
    // Touching intervals count as overlapping.
    let ops = vec![put(1, "w", "k", "v1", 0, Some(10)), get(2, "a", "k", None, 10, 20)];
    assert_eq!(verdict(&ops), KeyVerdict::Linearizable);
}

#[test]
fn a_timed_out_write_may_have_applied_or_not() {
    let applied = vec![put(1, "w", "k", "v1", 0, None), get(2, "a", "k", Some("v1"), 50, 60)];
    assert_eq!(verdict(&applied), KeyVerdict::Linearizable);
    let not_applied =
        vec![put(1, "w", "k", "v1", 0, None), get(2, "a", "k", None, 50, 60), get(3, "a", "k", None, 70, 80)];
    assert_eq!(verdict(&not_applied), KeyVerdict::Linearizable);
    let applied_late =
        vec![put(1, "w", "k", "v1", 0, None), get(2, "a", "k", None, 10, 20), get(3, "b", "k", Some("v1"), 30, 40)];
    assert_eq!(verdict(&applied_late), KeyVerdict::Linearizable);
    // Once seen applied, it cannot be unapplied.
    let mut flicker = applied_late.clone();
    flicker.push(get(4, "a", "k", None, 50, 60));
    assert_eq!(verdict(&flicker), KeyVerdict::NotLinearizable);
    // A timed-out delete, likewise.
    let ops = vec![
        put(1, "w", "k", "v1", 0, Some(5)),
        delete(2, "w", "k", 10, None),
        get(3, "a", "k", Some("v1"), 20, 30),
        get(4, "a", "k", None, 40, 50),
    ];
    assert_eq!(verdict(&ops), KeyVerdict::Linearizable);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_caught() {
    let ops = vec![
        put(1, "w", "k", "v1", 0, Some(10)),
        put(2, "w", "k", "v2", 20, Some(30)),
        get(3, "a", "k", Some("v2"), 35, 38),
        get(4, "r", "k", Some("v1"), 40, 50),
    ];
    assert_eq!(witness_ids(&ops), vec![1, 2, 4]);
}

#[test]
fn a_read_of_a_value_never_written_is_caught() {
    let ops = vec![put(1, "w", "k", "v1", 0, Some(10)), get(2, "r", "k", Some("ghost"), 20, 30)];
    assert_eq!(witness_ids(&ops), vec![2]);
}

#[test]
fn a_lost_write_is_caught() {
    let ops = vec![
        put(1, "w", "k", "v1", 0, Some(10)),
        put(2, "w", "k", "v2", 20, Some(30)),
        get(3, "r", "k", Some("v1"), 40, 50),
        get(4, "r", "k", Some("v1"), 60, 70),
    ];
    assert_eq!(verdict(&ops), KeyVerdict::NotLinearizable);
    let absent = vec![put(1, "w", "k", "v1", 0, Some(10)), get(2, "r", "k", None, 20, 30)];
    assert_eq!(witness_ids(&absent), vec![1, 2]);
}

#[test]
fn a_read_going_back_in_time_across_two_readers_is_caught() {
    // v2's write is still in progress, so either value alone is fine; but
    // once reader a saw v2, reader b, starting later, cannot see v1.
    let ops = vec![
        put(1, "w", "k", "v1", 0, Some(10)),
        put(2, "w", "k", "v2", 20, Some(100)),
        get(3, "a", "k", Some("v2"), 30, 40),
        get(4, "b", "k", Some("v1"), 50, 60),
    ];
    assert_eq!(witness_ids(&ops), vec![1, 2, 3, 4]);
}

#[test]
fn a_read_resurrecting_a_deleted_value_is_caught() {
    let ops = vec![
        put(1, "w", "k", "v1", 0, Some(10)),
        delete(2, "w", "k", 20, Some(30)),
        get(3, "r", "k", Some("v1"), 40, 50),
    ];
    assert_eq!(witness_ids(&ops), vec![1, 2, 3]);
}

#[test]
fn keys_are_checked_apart_and_the_guilty_key_is_named() {
    let ops = vec![
        put(1, "w", "a", "v1", 0, Some(10)),
        get(2, "r", "b", Some("v1"), 20, 30),
        get(3, "r", "a", Some("v1"), 20, 30),
    ];
    let Outcome::Violation(v) = check(&ops, Limits::default()) else { panic!() };
    assert_eq!(v.key, "b");
    let text = v.to_string();
    assert!(text.contains("key \"b\"") && text.contains("get -> \"v1\""), "{text}");
}

#[test]
fn the_search_is_bounded_and_says_inconclusive() {
    let ops: Vec<Operation> = (0..12).map(|i| put(i, "w", "k", &format!("v{i}"), 0, Some(1000))).collect();
    assert!(matches!(
        check(&ops, Limits { max_states: 10 }),
        Outcome::Inconclusive { ref key, .. } if key == "k"
    ));
    assert!(matches!(check(&ops, Limits::default()), Outcome::Ok { .. }));
}

/// A site killed mid-run leaves many writes of unknown outcome. Unread
/// unknown puts and unknown deletes are reduced away (see `check_key`), so
/// such a history is decided in few states instead of exponentially many.
fn outage_history(unknown: u64) -> Vec<Operation> {
    let mut ops = vec![put(1, "a", "k", "v1", 0, Some(10)), get(2, "b", "k", Some("v1"), 20, 30)];
    for i in 0..unknown {
        // During the outage: puts and deletes that never heard back.
        ops.push(put(100 + i, &format!("p{i}"), "k", &format!("lost{i}"), 40 + i, None));
        ops.push(delete(200 + i, &format!("d{i}"), "k", 40 + i, None));
    }
    ops.push(put(3, "a", "k", "v2", 1000, Some(1010)));
    ops.push(get(4, "b", "k", Some("v2"), 1020, 1030));
    ops
}

#[test]
fn many_writes_of_unknown_outcome_are_decided_without_an_exponential_search() {
    let limits = Limits { max_states: 1_000 };
    assert!(matches!(check(&outage_history(40), limits), Outcome::Ok { .. }));
    // A read of absent after the outage is explained by one unknown delete.
    let mut ops = outage_history(40);
    ops.push(get(5, "c", "k", None, 1040, 1050));
    assert!(matches!(check(&ops, limits), Outcome::Ok { .. }), "{:?}", check(&ops, limits));
    // And the reductions hide no violation: a stale read after the outage is caught.
    let mut ops = outage_history(40);
    ops.push(get(5, "c", "k", Some("v1"), 1040, 1050));
    assert!(matches!(check(&ops, limits), Outcome::Violation(ref v) if v.key == "k"));
}

#[test]
fn an_unknown_put_whose_value_was_read_still_counts() {
    // Read after its call: it took effect.
    let ops = vec![put(1, "w", "k", "v1", 0, None), delete(2, "x", "k", 5, None), get(3, "a", "k", Some("v1"), 50, 60)];
    assert_eq!(verdict(&ops), KeyVerdict::Linearizable);
    // Read, then overwritten by an acknowledged delete, then read again: stale.
    let ops = vec![
        put(1, "w", "k", "v1", 0, None),
        get(2, "a", "k", Some("v1"), 50, 60),
        delete(3, "b", "k", 70, Some(80)),
        get(4, "a", "k", Some("v1"), 90, 100),
    ];
    assert_eq!(verdict(&ops), KeyVerdict::NotLinearizable);
    // Read before it was called: impossible, whatever else timed out.
    let ops = vec![
        get(1, "a", "k", Some("v1"), 0, 10),
        delete(2, "x", "k", 5, None),
        delete(3, "y", "k", 6, None),
        put(4, "w", "k", "v1", 20, None),
    ];
    assert_eq!(verdict(&ops), KeyVerdict::NotLinearizable);
}

#[test]
fn unknown_deletes_taken_in_call_order_still_explain_every_absent_read() {
    // Each absent read needs a delete of its own: the first one only d1
    // (the one called by then), the second one d2.
    let history = |d2_call: u64| {
        vec![
            put(1, "a", "k", "v1", 0, Some(10)),
            delete(2, "d1", "k", 20, None),
            get(3, "b", "k", None, 30, 40),
            put(4, "a", "k", "v2", 50, Some(60)),
            get(5, "b", "k", Some("v2"), 70, 80),
            delete(6, "d2", "k", d2_call, None),
            get(7, "b", "k", None, 100, 110),
        ]
    };
    assert_eq!(verdict(&history(90)), KeyVerdict::Linearizable);
    // d2 called first: call order takes it for the first read, d1 for the second.
    assert_eq!(verdict(&history(5)), KeyVerdict::Linearizable);
    // With d2 gone, d1 cannot serve both reads.
    let mut ops = history(90);
    ops.remove(5);
    assert_eq!(verdict(&ops), KeyVerdict::NotLinearizable);
}

/// A history from a real sequential execution: each operation takes effect
/// at its own instant `10 * (i + 1)`, and its interval is stretched randomly
/// around that instant, so intervals overlap. Some puts and deletes time out,
/// having applied or not.
fn generate(rng: &mut StdRng, n: usize) -> Vec<Operation> {
    let keys = ["a", "b", "c"];
    let mut register: std::collections::BTreeMap<&str, Option<String>> = Default::default();
    let mut ops = Vec::new();
    for i in 0..n {
        let at = 10 * (i as u64 + 1);
        let call = at - rng.random_range(0..40).min(at);
        let ret = at + rng.random_range(0..40);
        let key = keys[rng.random_range(0..keys.len())];
        let client = format!("c{}", i % 5);
        let id = i as u64;
        let timed_out = rng.random_bool(0.1);
        let applies = !timed_out || rng.random_bool(0.5);
        let ret_seen = if timed_out { None } else { Some(ret) };
        match rng.random_range(0..10) {
            0..=3 => {
                let value = format!("v{i}");
                if applies {
                    register.insert(key, Some(value.clone()));
                }
                ops.push(put(id, &client, key, &value, call, ret_seen));
            }
            4 => {
                if applies {
                    register.insert(key, None);
                }
                ops.push(delete(id, &client, key, call, ret_seen));
            }
            _ => {
                let read = register.get(key).cloned().flatten();
                ops.push(get(id, &client, key, read.as_deref(), call, ret));
            }
        }
    }
    ops
}

/// Makes one read return a value that a write completed before the read
/// began had already overwritten, that write itself coming after the stale
/// value's write in real time: no linearization can explain it.
fn make_one_read_stale(ops: &mut [Operation]) -> bool {
    for g in 0..ops.len() {
        if ops[g].op != Op::Get {
            continue;
        }
        let (key, call) = (ops[g].key.clone(), ops[g].call);
        let stale = ops.iter().find_map(|p1| {
            let Op::Put(v) = &p1.op else { return None };
            let p1_ret = p1.ret.filter(|_| p1.key == key)?;
            let overwritten = ops.iter().any(|p2| {
                p2.key == key
                    && matches!(p2.op, Op::Put(_) | Op::Delete)
                    && p2.call > p1_ret
                    && p2.ret.is_some_and(|r| r < call)
            });
            (overwritten && ops[g].output != Some(Some(v.clone()))).then(|| v.clone())
        });
        if let Some(v) = stale {
            ops[g].output = Some(Some(v));
            return true;
        }
    }
    false
}

#[test]
fn random_histories_of_real_executions_pass_and_one_stale_read_fails_them() {
    let mut mutated = 0;
    for seed in 0..500 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut ops = generate(&mut rng, 60);
        assert!(matches!(check(&ops, Limits::default()), Outcome::Ok { .. }), "seed {seed}: {ops:#?}");
        if make_one_read_stale(&mut ops) {
            mutated += 1;
            assert!(matches!(check(&ops, Limits::default()), Outcome::Violation(_)), "seed {seed} not caught");
        }
    }
    assert!(mutated > 400, "only {mutated} histories had a read to make stale");
}

fn run_bin(input: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbit-lincheck"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("waits");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_binary_exits_by_verdict() {
    let ok = r#"{"kind":"call","id":1,"client":"c1","op":"put","key":"k","value":"v1","time":100}
{"kind":"return","id":1,"time":180,"status":"ok"}
{"kind":"call","id":2,"client":"c2","op":"get","key":"k","time":200}
{"kind":"return","id":2,"time":210,"status":"ok","value":"v1"}
"#;
    let (code, text) = run_bin(ok);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("ok: 2 operations on 1 keys"), "{text}");
    let stale = ok.replace(r#""value":"v1"}"#, r#""value":null}"#);
    let (code, text) = run_bin(&stale);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("violation: key \"k\""), "{text}");
    let (code, text) = run_bin("{not json\n");
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("line 1"), "{text}");
}
