//! The history format: JSON lines, one event per line, a call and (unless
//! the client never heard back) a return per operation.
//!
//! ```text
//! {"kind":"call","id":1,"client":"c1","op":"put","key":"k","value":"v1","time":100}
//! {"kind":"call","id":2,"client":"c2","op":"get","key":"k","time":120}
//! {"kind":"return","id":1,"time":180,"status":"ok"}
//! {"kind":"return","id":2,"time":190,"status":"ok","value":"v1"}
//! {"kind":"call","id":3,"client":"c1","op":"delete","key":"k","time":200}
//! {"kind":"return","id":3,"time":260,"status":"unknown"}
//! ```
//!
//! - `id` is unique per operation; `client` names who issued it (a client
//!   issues one operation at a time); `time` is an integer on one clock shared
//!   by every client (a harness on one machine), in any unit.
//! - `op` is `put` (with `value`), `get` or `delete`.
//! - A return's `status` is `ok` (it took effect; a get's `value` is what it
//!   read, `null` or absent for "no such key"), `fail` (it surely did not take
//!   effect, e.g. an S3 4xx), or `unknown` (a timeout, a dropped connection).
//!   An operation with no return line is `unknown` too. A put or delete of
//!   unknown outcome may have taken effect at any moment after its call, or
//!   never; a get of unknown outcome tells nothing and is ignored.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::BufRead;

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(String),
    Get,
    Delete,
}

/// One operation with its interval. `ret` is `None` when the outcome is
/// unknown: the operation may take effect any time after `call`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub id: u64,
    pub client: String,
    pub key: String,
    pub op: Op,
    /// For a get that returned: what it read (`None` = absent).
    pub output: Option<Option<String>>,
    pub call: u64,
    pub ret: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistoryError {
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("line {line}: operation {id}: {message}")]
    Invalid { line: usize, id: u64, message: String },
    #[error("reading the history: {0}")]
    Io(String),
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum Event {
    Call {
        id: u64,
        client: String,
        op: OpName,
        key: String,
        #[serde(default)]
        value: Option<String>,
        time: u64,
    },
    Return {
        id: u64,
        time: u64,
        status: Status,
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        client: Option<String>,
    },
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum OpName {
    Put,
    Get,
    Delete,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Fail,
    Unknown,
}

/// Reads a JSON-lines history into operations (in call order). Blank lines
/// are skipped. Operations that surely failed, and gets whose outcome is
/// unknown, are left out: they constrain nothing.
pub fn parse(reader: impl BufRead) -> Result<Vec<Operation>, HistoryError> {
    let mut open: BTreeMap<u64, (usize, Operation)> = BTreeMap::new();
    let mut done: Vec<Operation> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| HistoryError::Io(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event =
            serde_json::from_str(&line).map_err(|e| HistoryError::Parse { line: line_no, message: e.to_string() })?;
        let invalid = |id, message: &str| HistoryError::Invalid { line: line_no, id, message: message.to_owned() };
        match event {
            Event::Call { id, client, op, key, value, time } => {
                if !seen.insert(id) {
                    return Err(invalid(id, "called twice"));
                }
                let op = match (op, value) {
                    (OpName::Put, Some(v)) => Op::Put(v),
                    (OpName::Put, None) => return Err(invalid(id, "a put needs a value")),
                    (OpName::Get, _) => Op::Get,
                    (OpName::Delete, _) => Op::Delete,
                };
                let operation = Operation { id, client, key, op, output: None, call: time, ret: None };
                open.insert(id, (line_no, operation));
            }
            Event::Return { id, time, status, value, client } => {
                let Some((_, mut operation)) = open.remove(&id) else {
                    return Err(invalid(id, "returns without an open call"));
                };
                if client.as_ref().is_some_and(|c| c != &operation.client) {
                    return Err(invalid(id, "returns to another client than the caller"));
                }
                if time < operation.call {
                    return Err(invalid(id, "returns before it was called"));
                }
                match status {
                    Status::Fail => continue,
                    Status::Unknown if operation.op == Op::Get => continue,
                    Status::Unknown => {}
                    Status::Ok => {
                        operation.ret = Some(time);
                        if operation.op == Op::Get {
                            operation.output = Some(value);
                        }
                    }
                }
                done.push(operation);
            }
        }
    }
    // Calls that never returned: outcome unknown.
    done.extend(open.into_values().map(|(_, o)| o).filter(|o| o.op != Op::Get));
    done.sort_by_key(|o| (o.call, o.id));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let text = r#"{"kind":"call","id":1,"client":"c1","op":"put","key":"k","value":"v1","time":100}
{"kind":"call","id":2,"client":"c2","op":"get","key":"k","time":120}
{"kind":"return","id":1,"time":180,"status":"ok"}
{"kind":"return","id":2,"time":190,"status":"ok","value":"v1"}

{"kind":"call","id":3,"client":"c1","op":"delete","key":"k","time":200}
{"kind":"return","id":3,"time":260,"status":"unknown"}
{"kind":"call","id":4,"client":"c3","op":"get","key":"k","time":300}
"#;
        let ops = parse(text.as_bytes()).expect("valid");
        assert_eq!(ops.len(), 3, "the get that never returned is dropped");
        assert_eq!(ops[1].output, Some(Some("v1".into())));
        assert_eq!(ops[2].op, Op::Delete);
        assert_eq!(ops[2].ret, None);
    }

    #[test]
    fn bad_input_names_its_line() {
        let e = parse(r#"{"kind":"return","id":9,"time":1,"status":"ok"}"#.as_bytes()).unwrap_err();
        assert_eq!(e, HistoryError::Invalid { line: 1, id: 9, message: "returns without an open call".into() });
        let e = parse("\n{\"kind\":\"call\"}".as_bytes()).unwrap_err();
        assert!(matches!(e, HistoryError::Parse { line: 2, .. }), "{e}");
        let text = r#"{"kind":"call","id":1,"client":"c","op":"put","key":"k","time":1}"#;
        assert!(parse(text.as_bytes()).unwrap_err().to_string().contains("needs a value"));
    }
}
