//! How long the checker takes on histories of one key with many concurrent
//! clients: `cargo run --release -p orbit-lincheck --example lincheck_bench`.
//! Each history comes from a real sequential execution whose operations'
//! intervals are stretched to overlap about `overlap` others, so every one is
//! linearizable and the search must find the order.

use orbit_lincheck::{Limits, Op, Operation, Outcome, check};
use std::time::Instant;

/// A small deterministic generator (xorshift), enough for a benchmark.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn history(n: usize, overlap: u64, seed: u64) -> Vec<Operation> {
    let mut rng = Rng(seed | 1);
    let mut current: Option<String> = None;
    let mut ops = Vec::with_capacity(n);
    for i in 0..n {
        let at = 10 * (i as u64 + 1);
        let spread = 10 * overlap;
        let call = at.saturating_sub(rng.below(spread));
        let ret = at + rng.below(spread);
        let (op, output) = if rng.below(2) == 0 {
            let v = format!("v{i}");
            current = Some(v.clone());
            (Op::Put(v), None)
        } else {
            (Op::Get, Some(current.clone()))
        };
        ops.push(Operation {
            id: i as u64,
            client: format!("c{i}"),
            key: "k".into(),
            op,
            output,
            call,
            ret: Some(ret),
        });
    }
    ops
}

fn main() {
    println!("{:>8} {:>8} {:>12} {:>10}", "ops", "overlap", "ms", "verdict");
    for &(n, overlap) in &[(1_000, 2), (1_000, 5), (10_000, 2), (10_000, 5), (10_000, 10), (100_000, 5)] {
        let ops = history(n, overlap, 42);
        let start = Instant::now();
        let outcome = check(&ops, Limits::default());
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let verdict = match outcome {
            Outcome::Ok { .. } => "ok",
            Outcome::Violation(_) => "violation",
            Outcome::Inconclusive { .. } => "inconclusive",
        };
        println!("{n:>8} {overlap:>8} {ms:>12.1} {verdict:>10}");
    }
}
