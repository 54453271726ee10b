//! Streaming conversion of a JSON array body into newline-delimited JSON parts.
//!
//! The API answers with one bare JSON array that can be larger than a Lambda's memory. The splitter
//! walks the bytes once, emits each top-level element as one compact line (whitespace outside strings
//! dropped, so pretty-printed input still yields one record per line) and keeps only the element in
//! progress in memory. Parts roll over at a byte budget and are spooled to local files, so nothing
//! reaches the lake until the whole body has been validated.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A single record larger than this is treated as a broken payload rather than buffered.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// After `[` or `,`: a value (or `]` right after `[`) must follow.
    ExpectValue { first: bool },
    /// Inside an element.
    InValue {
        depth: u32,
        in_string: bool,
        escape: bool,
    },
    /// After an element: `,` or `]`.
    AfterValue,
    /// After the closing `]`: only whitespace may follow.
    Done,
}

/// Incremental splitter of a JSON array into its elements (which must be JSON objects).
pub struct ArraySplitter {
    state: State,
    current: Vec<u8>,
    records: u64,
    offset: u64,
    what: String,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl ArraySplitter {
    /// `what` names the payload in error messages (e.g. the request URL).
    pub fn new(what: impl Into<String>) -> Self {
        ArraySplitter {
            state: State::Start,
            current: Vec::with_capacity(4096),
            records: 0,
            offset: 0,
            what: what.into(),
        }
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    fn bad(&self, msg: impl std::fmt::Display) -> Error {
        Error::InvalidSourcePayload(format!(
            "{}: {msg} (byte offset {}, after {} complete records)",
            self.what, self.offset, self.records
        ))
    }

    /// Feeds a chunk; `emit` receives each complete element as compact JSON bytes.
    pub fn feed(&mut self, chunk: &[u8], emit: &mut impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        for &b in chunk {
            match self.state {
                State::Start => {
                    if b == b'[' {
                        self.state = State::ExpectValue { first: true };
                    } else if !(is_ws(b) || (self.offset < 3 && matches!(b, 0xEF | 0xBB | 0xBF))) {
                        return Err(self.bad(format!(
                            "body is not a JSON array (starts with {:?})",
                            char::from(b)
                        )));
                    }
                }
                State::ExpectValue { first } => {
                    if b == b'{' {
                        self.current.clear();
                        self.current.push(b);
                        self.state = State::InValue {
                            depth: 1,
                            in_string: false,
                            escape: false,
                        };
                    } else if b == b']' && first {
                        self.state = State::Done;
                    } else if !is_ws(b) {
                        return Err(self.bad(format!(
                            "array element {} is not a JSON object (starts with {:?})",
                            self.records + 1,
                            char::from(b)
                        )));
                    }
                }
                State::InValue {
                    depth,
                    in_string,
                    escape,
                } => {
                    if in_string {
                        self.current.push(b);
                        self.state = State::InValue {
                            depth,
                            in_string: b != b'"' || escape,
                            escape: b == b'\\' && !escape,
                        };
                    } else if !is_ws(b) {
                        self.current.push(b);
                        let depth = match b {
                            b'{' | b'[' => depth + 1,
                            b'}' | b']' => depth - 1,
                            _ => depth,
                        };
                        if depth == 0 {
                            self.finish_record(emit)?;
                            self.state = State::AfterValue;
                        } else {
                            self.state = State::InValue {
                                depth,
                                in_string: b == b'"',
                                escape: false,
                            };
                        }
                    }
                    if self.current.len() > MAX_RECORD_BYTES {
                        return Err(self.bad(format!(
                            "record {} is larger than {MAX_RECORD_BYTES} bytes",
                            self.records + 1
                        )));
                    }
                }
                State::AfterValue => match b {
                    b',' => self.state = State::ExpectValue { first: false },
                    b']' => self.state = State::Done,
                    _ if is_ws(b) => {}
                    _ => {
                        return Err(self.bad(format!(
                            "expected ',' or ']' after record {}, found {:?}",
                            self.records,
                            char::from(b)
                        )))
                    }
                },
                State::Done => {
                    if !is_ws(b) {
                        return Err(self.bad("unexpected data after the closing ']'"));
                    }
                }
            }
            self.offset += 1;
        }
        Ok(())
    }

    fn finish_record(&mut self, emit: &mut impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        // The splitter only tracks structure; a full parse catches bad tokens and invalid UTF-8.
        // IgnoredAny skips string contents unchecked, so UTF-8 is validated on its own.
        let text = match std::str::from_utf8(&self.current) {
            Ok(t) => t,
            Err(e) => {
                return Err(self.bad(format!(
                    "record {} is not valid JSON: invalid UTF-8: {e}",
                    self.records + 1
                )))
            }
        };
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return Err(self.bad(format!(
                "record {} is not valid JSON: {e}",
                self.records + 1
            )));
        }
        self.records += 1;
        emit(&self.current)
    }

    /// Call at end of body: fails unless the array was closed.
    pub fn finish(&self) -> Result<u64> {
        match self.state {
            State::Done => Ok(self.records),
            State::Start => Err(self.bad("empty body: expected a JSON array")),
            _ => Err(self.bad("truncated body: the JSON array was not closed")),
        }
    }
}

/// A finished part on local disk, waiting to be published.
#[derive(Debug)]
pub struct SpooledPart {
    pub file: tempfile::TempPath,
    pub records: u64,
    pub bytes: u64,
}

impl SpooledPart {
    pub fn path(&self) -> &Path {
        &self.file
    }
}

/// Writes NDJSON lines into local temporary files of at most `max_bytes` each (a single record
/// larger than the budget gets a part of its own).
pub struct PartSpooler {
    dir: PathBuf,
    max_bytes: u64,
    current: Option<(
        std::io::BufWriter<std::fs::File>,
        tempfile::TempPath,
        u64,
        u64,
    )>,
    done: Vec<SpooledPart>,
}

fn spool_err(dir: &Path, e: std::io::Error) -> Error {
    Error::Configuration(format!("cannot write spool file in {}: {e}", dir.display()))
}

impl PartSpooler {
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        PartSpooler {
            dir: dir.into(),
            max_bytes: max_bytes.max(1),
            current: None,
            done: Vec::new(),
        }
    }

    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let needed = line.len() as u64 + 1;
        if let Some((_, _, _, bytes)) = &self.current {
            if *bytes > 0 && bytes + needed > self.max_bytes {
                self.roll()?;
            }
        }
        if self.current.is_none() {
            let (file, path) = tempfile::Builder::new()
                .prefix("deftunes-part-")
                .suffix(".jsonl")
                .tempfile_in(&self.dir)
                .map_err(|e| spool_err(&self.dir, e))?
                .into_parts();
            self.current = Some((
                std::io::BufWriter::with_capacity(256 * 1024, file),
                path,
                0,
                0,
            ));
        }
        if let Some((w, _, records, bytes)) = &mut self.current {
            w.write_all(line)
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| spool_err(&self.dir, e))?;
            *records += 1;
            *bytes += needed;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        if let Some((w, path, records, bytes)) = self.current.take() {
            let file = w
                .into_inner()
                .map_err(|e| spool_err(&self.dir, e.into_error()))?;
            file.sync_all().map_err(|e| spool_err(&self.dir, e))?;
            self.done.push(SpooledPart {
                file: path,
                records,
                bytes,
            });
        }
        Ok(())
    }

    /// Closes the last part and hands over all parts, in order.
    pub fn finish(mut self) -> Result<Vec<SpooledPart>> {
        self.roll()?;
        Ok(std::mem::take(&mut self.done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(input: &[u8], chunk: usize) -> Result<Vec<String>> {
        let mut s = ArraySplitter::new("test");
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            s.feed(c, &mut |r| {
                out.push(String::from_utf8(r.to_vec()).unwrap());
                Ok(())
            })?;
        }
        s.finish()?;
        Ok(out)
    }

    #[test]
    fn splits_pretty_printed_array_into_compact_lines_at_any_chunking() {
        let input = br#" [
          {"a": 1, "b": "x, y ] }", "c": [1, {"d": null}]},
          {"e": "quote \" and backslash \\", "f": "line\nbreak"}
        ] "#;
        for chunk in [1, 2, 3, 7, 1000] {
            let got = split_all(input, chunk).unwrap();
            assert_eq!(
                got,
                vec![
                    r#"{"a":1,"b":"x, y ] }","c":[1,{"d":null}]}"#.to_string(),
                    r#"{"e":"quote \" and backslash \\","f":"line\nbreak"}"#.to_string()
                ],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn empty_array_has_no_records() {
        assert!(split_all(b"[]", 1).unwrap().is_empty());
        assert!(split_all(b" [ \n ] \n", 4).unwrap().is_empty());
    }

    #[test]
    fn truncated_bodies_are_errors_naming_the_position() {
        for body in [
            &b"[{\"a\":1},{\"b\""[..],
            b"[{\"a\":1},",
            b"[{\"a\":1}",
            b"[",
        ] {
            let e = split_all(body, 3).unwrap_err();
            assert_eq!(e.error_type(), "InvalidSourcePayload");
            assert!(e.to_string().contains("truncated"), "{e}");
        }
        let e = split_all(b"", 3).unwrap_err();
        assert!(e.to_string().contains("empty body"), "{e}");
    }

    #[test]
    fn non_array_bodies_are_rejected() {
        let e = split_all(br#"{"data":[]}"#, 5).unwrap_err();
        assert!(e.to_string().contains("not a JSON array"), "{e}");
        let e = split_all(b"[1,2]", 5).unwrap_err();
        assert!(
            e.to_string().contains("element 1 is not a JSON object"),
            "{e}"
        );
        let e = split_all(b"[{\"a\":1}] x", 5).unwrap_err();
        assert!(e.to_string().contains("after the closing"), "{e}");
        let e = split_all(b"[{\"a\":1} {\"a\":2}]", 5).unwrap_err();
        assert!(e.to_string().contains("expected ','"), "{e}");
    }

    #[test]
    fn invalid_tokens_and_utf8_inside_a_record_are_rejected() {
        let e = split_all(b"[{\"a\" 1}]", 4).unwrap_err();
        assert!(e.to_string().contains("record 1 is not valid JSON"), "{e}");
        let e = split_all(b"[{\"a\":\"\xff\"}]", 4).unwrap_err();
        assert!(e.to_string().contains("record 1 is not valid JSON"), "{e}");
    }

    #[test]
    fn spooler_rolls_parts_at_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = PartSpooler::new(dir.path(), 20);
        for i in 0..10 {
            sp.write_line(format!("{{\"i\":{i}}}").as_bytes()).unwrap(); // 8 bytes + \n
        }
        let parts = sp.finish().unwrap();
        assert_eq!(parts.iter().map(|p| p.records).sum::<u64>(), 10);
        assert_eq!(parts.len(), 5);
        for p in &parts {
            assert!(p.bytes <= 20);
            let text = std::fs::read_to_string(p.path()).unwrap();
            assert_eq!(text.len() as u64, p.bytes);
            assert_eq!(text.lines().count() as u64, p.records);
        }
    }

    #[test]
    fn spooler_without_lines_has_no_parts() {
        let dir = tempfile::tempdir().unwrap();
        assert!(PartSpooler::new(dir.path(), 20)
            .finish()
            .unwrap()
            .is_empty());
    }
}
