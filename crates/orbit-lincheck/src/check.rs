//! The check: Wing & Gong's search for a linearization, with Lowe's
//! memoisation of (operations linearized, register state) pairs already
//! explored, as porcupine does it; run per key, since a key-value store is
//! linearizable if and only if each key's register is.

use crate::history::{Op, Operation};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// How far one key's search may go before it gives up.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Distinct (linearized set, state) pairs explored per key.
    pub max_states: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_states: 5_000_000 }
    }
}

/// The verdict on one key's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    Linearizable,
    NotLinearizable,
    /// The search reached the state limit without a verdict.
    Inconclusive {
        states: usize,
    },
}

/// A key whose history has no linearization, with a small witness: a subset
/// of its operations that on their own admit none (no write is left out whose
/// value a remaining read returned, so the witness never blames a read for a
/// write it removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    pub witness: Vec<Operation>,
    /// How many operations the key's full history has.
    pub operations: usize,
}

/// The verdict on a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok { keys: usize, operations: usize },
    Violation(Violation),
    Inconclusive { key: String, states: usize },
}

/// Checks every key; reports the first violation found (keys in order),
/// else the first key left inconclusive, else ok.
pub fn check(operations: &[Operation], limits: Limits) -> Outcome {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for o in operations {
        by_key.entry(&o.key).or_default().push(o);
    }
    let mut inconclusive = None;
    for (key, ops) in &by_key {
        match check_key(ops, limits) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::NotLinearizable => {
                return Outcome::Violation(Violation {
                    key: (*key).to_owned(),
                    witness: minimise(ops, limits),
                    operations: ops.len(),
                });
            }
            KeyVerdict::Inconclusive { states } => {
                inconclusive.get_or_insert(((*key).to_owned(), states));
            }
        }
    }
    match inconclusive {
        Some((key, states)) => Outcome::Inconclusive { key, states },
        None => Outcome::Ok { keys: by_key.len(), operations: operations.len() },
    }
}

/// Removes operations one at a time while what is left still has no
/// linearization. Bounded: histories over 400 operations are reported whole.
fn minimise(ops: &[&Operation], limits: Limits) -> Vec<Operation> {
    let mut kept: Vec<&Operation> = ops.to_vec();
    if kept.len() <= 400 {
        // Reads first, then writes, latest first: the witness keeps the
        // earliest operations that already contradict each other.
        let mut order: Vec<usize> = (0..kept.len()).collect();
        order.sort_by_key(|&i| (kept[i].op != Op::Get, std::cmp::Reverse(kept[i].call)));
        let mut removed = vec![false; kept.len()];
        for i in order {
            let read_values: HashSet<&str> = kept
                .iter()
                .enumerate()
                .filter(|(j, o)| !removed[*j] && *j != i && o.op == Op::Get)
                .filter_map(|(_, o)| o.output.as_ref().and_then(|v| v.as_deref()))
                .collect();
            if let Op::Put(v) = &kept[i].op
                && read_values.contains(v.as_str())
            {
                continue;
            }
            removed[i] = true;
            let candidate: Vec<&Operation> =
                kept.iter().enumerate().filter(|(j, _)| !removed[*j]).map(|(_, o)| *o).collect();
            if check_key(&candidate, limits) != KeyVerdict::NotLinearizable {
                removed[i] = false;
            }
        }
        kept = kept.into_iter().enumerate().filter(|(j, _)| !removed[*j]).map(|(_, o)| o).collect();
    }
    kept.into_iter().cloned().collect()
}

const HEAD: usize = 0;

/// Wing & Gong with Lowe's memoisation over one register's operations.
///
/// Two reductions keep histories with many unknown outcomes (a site killed
/// or cut off mid-run) from an exponential search, without changing the
/// verdict:
/// - A put of unknown outcome whose value no read returned is left out. In
///   any linearization that holds it, no read sees its value, so the next
///   operation after it is a write and the order without it is valid too;
///   and leaving it out is one of its allowed outcomes (never applied).
/// - Deletes of unknown outcome are interchangeable: same effect, no return
///   to respect. Any linearization can swap them into the order of their
///   calls (an earlier-called one may stand wherever a later one stood), so
///   only that order is searched: a delete of unknown outcome is taken only
///   once every one called before it has been.
pub fn check_key(ops: &[&Operation], limits: Limits) -> KeyVerdict {
    let read_values: HashSet<&str> =
        ops.iter().filter(|o| o.op == Op::Get).filter_map(|o| o.output.as_ref().and_then(|v| v.as_deref())).collect();
    let kept: Vec<&Operation> = ops
        .iter()
        .copied()
        .filter(|o| !(o.ret.is_none() && matches!(&o.op, Op::Put(v) if !read_values.contains(v.as_str()))))
        .collect();
    let ops = &kept[..];
    let n = ops.len();
    if n == 0 {
        return KeyVerdict::Linearizable;
    }
    // Register states as small integers: 0 is "absent", then each value put.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    for o in ops {
        if let Op::Put(v) = &o.op {
            let next = ids.len() as u32 + 1;
            ids.entry(v.as_str()).or_insert(next);
        }
    }
    // What each op needs and does: a get of a value nobody put never matches.
    let step = |op: usize, state: u32| -> Option<u32> {
        let o = ops[op];
        match &o.op {
            Op::Put(v) => Some(ids[v.as_str()]),
            Op::Delete => Some(0),
            Op::Get => {
                let read = match &o.output {
                    Some(Some(v)) => ids.get(v.as_str()).copied().unwrap_or(u32::MAX),
                    Some(None) => 0,
                    None => return Some(state),
                };
                (read == state).then_some(state)
            }
        }
    };

    // Entries 1..=2n (a call and a return per op) in time order, calls
    // before returns at equal times (touching intervals overlap); a return
    // never seen sorts last. 0 and 2n+1 are the list's head and tail.
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        entries.push((o.call, false, i));
        entries.push((o.ret.unwrap_or(u64::MAX), true, i));
    }
    entries.sort();
    let tail = 2 * n + 1;
    let mut next: Vec<usize> = (0..=tail).map(|i| (i + 1).min(tail)).collect();
    let mut prev: Vec<usize> = (0..=tail).map(|i| i.saturating_sub(1)).collect();
    let mut op_of = vec![0; tail + 1];
    let mut is_call = vec![false; tail + 1];
    let mut ret_of_op = vec![0; n];
    let mut partner = vec![0; tail + 1];
    for (pos, &(_, is_ret, op)) in entries.iter().enumerate() {
        let e = pos + 1;
        op_of[e] = op;
        is_call[e] = !is_ret;
        if is_ret {
            ret_of_op[op] = e;
        }
    }
    for e in 1..=2 * n {
        if is_call[e] {
            partner[e] = ret_of_op[op_of[e]];
        }
    }
    let lift = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let m = partner[e];
        next[prev[e]] = next[e];
        prev[next[e]] = prev[e];
        next[prev[m]] = next[m];
        prev[next[m]] = prev[m];
    };
    let unlift = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let m = partner[e];
        next[prev[m]] = m;
        prev[next[m]] = m;
        next[prev[e]] = e;
        prev[next[e]] = e;
    };

    // The memo: (set of linearized ops, state) pairs already explored. The
    // set is hashed incrementally (an XOR of a random word per op), so a step
    // costs O(1) unless the hash matches, when the sets are compared exactly.
    // Rank of each delete of unknown outcome in call order, and how many are linearized.
    let mut unknown_delete_rank: Vec<Option<usize>> = vec![None; n];
    let mut unknown_deletes: Vec<usize> = (0..n).filter(|&i| ops[i].ret.is_none() && ops[i].op == Op::Delete).collect();
    unknown_deletes.sort_by_key(|&i| (ops[i].call, i));
    for (rank, &i) in unknown_deletes.iter().enumerate() {
        unknown_delete_rank[i] = Some(rank);
    }
    let mut unknown_deletes_taken = 0usize;

    let words = n.div_ceil(64);
    let zobrist: Vec<u64> = (0..n as u64).map(splitmix64).collect();
    let mut linearized = vec![0u64; words];
    let mut hash = 0u64;
    let mut seen: HashMap<(u64, u32), Vec<Vec<u64>>> = HashMap::new();
    let mut states = 0usize;
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut state = 0u32;
    let mut entry = next[HEAD];
    while next[HEAD] != tail {
        if is_call[entry] {
            let op = op_of[entry];
            let in_turn = unknown_delete_rank[op].is_none_or(|rank| rank == unknown_deletes_taken);
            if let Some(new_state) = step(op, state).filter(|_| in_turn) {
                let (word, bit) = (op / 64, 1u64 << (op % 64));
                let candidate_hash = hash ^ zobrist[op];
                let same = seen.entry((candidate_hash, new_state)).or_default();
                let explored = same.iter().any(|set| {
                    set.iter().enumerate().all(|(i, w)| *w == linearized[i] | if i == word { bit } else { 0 })
                });
                if !explored {
                    linearized[word] |= bit;
                    same.push(linearized.clone());
                    states += 1;
                    if states > limits.max_states {
                        return KeyVerdict::Inconclusive { states };
                    }
                    hash = candidate_hash;
                    if unknown_delete_rank[op].is_some() {
                        unknown_deletes_taken += 1;
                    }
                    stack.push((entry, state));
                    state = new_state;
                    lift(entry, &mut next, &mut prev);
                    entry = next[HEAD];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            // A return reached with its op not linearized: undo the last choice.
            let Some((e, s)) = stack.pop() else { return KeyVerdict::NotLinearizable };
            let op = op_of[e];
            state = s;
            if unknown_delete_rank[op].is_some() {
                unknown_deletes_taken -= 1;
            }
            linearized[op / 64] &= !(1 << (op % 64));
            hash ^= zobrist[op];
            unlift(e, &mut next, &mut prev);
            entry = next[e];
        }
    }
    KeyVerdict::Linearizable
}

/// A well-mixed 64-bit word from a counter (splitmix64), for the memo's hash.
fn splitmix64(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (&self.op, &self.output) {
            (Op::Put(v), _) => format!("put {v:?}"),
            (Op::Delete, _) => "delete".to_owned(),
            (Op::Get, Some(Some(v))) => format!("get -> {v:?}"),
            (Op::Get, Some(None)) => "get -> absent".to_owned(),
            (Op::Get, None) => "get -> ?".to_owned(),
        };
        match self.ret {
            Some(r) => write!(f, "op {} by {}: {what}, called {}, returned {r}", self.id, self.client, self.call),
            None => write!(f, "op {} by {}: {what}, called {}, outcome unknown", self.id, self.client, self.call),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?} is not linearizable: these {} of its {} operations admit no order:",
            self.key,
            self.witness.len(),
            self.operations
        )?;
        for o in &self.witness {
            writeln!(f, "  {o}")?;
        }
        Ok(())
    }
}
