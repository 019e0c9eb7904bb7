//! `orbit-lincheck [--max-states N] [HISTORY]`: checks a JSON-lines history
//! (standard input when no file is named). Exit status: 0 linearizable,
//! 1 violation, 2 inconclusive, 3 unreadable input.

use clap::Parser;
use orbit_lincheck::{Limits, Outcome, check, parse};
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "orbit-lincheck", about = "Check a key-value history for per-key linearizability")]
struct Args {
    /// History file in the JSON-lines format of orbit-lincheck (default: standard input).
    history: Option<PathBuf>,
    /// Give up on a key after exploring this many states, and report it inconclusive.
    #[arg(long, default_value_t = Limits::default().max_states)]
    max_states: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let parsed = match &args.history {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => parse(BufReader::new(f)),
            Err(e) => {
                eprintln!("orbit-lincheck: cannot open {}: {e}", path.display());
                return ExitCode::from(3);
            }
        },
        None => parse(std::io::stdin().lock()),
    };
    let operations = match parsed {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("orbit-lincheck: {e}");
            return ExitCode::from(3);
        }
    };
    match check(&operations, Limits { max_states: args.max_states }) {
        Outcome::Ok { keys, operations } => {
            println!("ok: {operations} operations on {keys} keys are linearizable");
            ExitCode::SUCCESS
        }
        Outcome::Violation(v) => {
            print!("violation: {v}");
            ExitCode::from(1)
        }
        Outcome::Inconclusive { key, states } => {
            println!("inconclusive: key {key:?} still undecided after {states} states (raise --max-states)");
            ExitCode::from(2)
        }
    }
}
