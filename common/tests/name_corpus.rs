//! Parameter-name parsing against a committed corpus and a mutation fuzzer.
//!
//! 1. Every line of `tests/corpus/names.tsv` is replayed with its expected
//!    outcome (accepted, or the exact error).
//! 2. A property test mutates corpus entries (inserting, deleting and
//!    replacing bytes and percent-escapes that matter: `/`, `.`, `%`, `%2F`,
//!    `%25`, `%00`, non-ASCII) and compares `ParameterName::from_path_segment`
//!    with an independent reading of the rules in the README: decode once,
//!    UTF-8, no control character, at most 1011 bytes, non-empty segments,
//!    no `.`/`..` segment, only `a-z A-Z 0-9 _ . -`. Accepted names must also
//!    stay under the prefix, round-trip through encoding, and go through the
//!    edge's route matcher unchanged.
//!
//! The test command runs a short pass (256 cases); a long run is
//! `NAME_FUZZ_CASES=1000000 cargo test -p service-common --test name_corpus --release`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use service_common::parameter::MAX_NAME_LEN;
use service_common::{ParameterName, ParameterPrefix, Route};

fn corpus() -> Vec<(String, String)> {
    let text = include_str!("corpus/names.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (expected, raw) = l.split_once('\t').expect("tab-separated line");
            (expected.to_owned(), raw.to_owned())
        })
        // Very long inputs are generated, not stored verbatim.
        .chain(std::iter::once((
            "TooLong".to_owned(),
            "a".repeat(MAX_NAME_LEN + 1),
        )))
        .collect()
}

fn outcome(raw: &str) -> String {
    match ParameterName::from_path_segment(raw) {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn corpus_entries_keep_their_outcome() {
    let mut wrong = Vec::new();
    for (expected, raw) in corpus() {
        let got = outcome(&raw);
        if got != expected {
            wrong.push(format!("{raw:?}: expected {expected}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "corpus mismatches:\n{}", wrong.join("\n"));
}

/// Percent-decodes once the way a URL path is decoded: `%XY` with two hex
/// digits becomes the byte, anything else is kept as it is.
fn decode_once(raw: &str) -> Vec<u8> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The README's rules, read independently of the implementation.
fn reference(raw: &str) -> Option<String> {
    let decoded = String::from_utf8(decode_once(raw)).ok()?;
    if decoded.is_empty() || decoded.len() > MAX_NAME_LEN {
        return None;
    }
    let segments_ok = decoded.split('/').all(|s| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    });
    segments_ok.then_some(decoded)
}

const PIECES: &[&str] = &[
    "/", ".", "..", "%", "%2F", "%2f", "%2E", "%25", "%252F", "%00", "%0A", "%7F", "%FF", "%C3%A9",
    "é", " ", "a", "Z", "9", "_", "-", "~", "%2", "%G1", "\\", "?", "#", ";",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, usize),
    Delete(usize),
    Replace(usize, usize),
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for e in edits {
        let n = s.len();
        match *e {
            Edit::Insert(at, p) => {
                let at = if n == 0 { 0 } else { at % (n + 1) };
                for (k, c) in PIECES[p % PIECES.len()].chars().enumerate() {
                    s.insert(at + k, c);
                }
            }
            Edit::Delete(at) if n > 0 => {
                s.remove(at % n);
            }
            Edit::Replace(at, p) if n > 0 => {
                let at = at % n;
                s.remove(at);
                for (k, c) in PIECES[p % PIECES.len()].chars().enumerate() {
                    s.insert(at + k, c);
                }
            }
            _ => {}
        }
    }
    s.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, p)| Edit::Insert(a, p)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), any::<usize>()).prop_map(|(a, p)| Edit::Replace(a, p)),
    ]
}

fn cases() -> u32 {
    std::env::var("NAME_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn mutated_corpus_matches_the_rules() {
    let seeds: Vec<String> = corpus()
        .into_iter()
        .map(|(_, raw)| raw)
        .filter(|r| r.len() < 64)
        .collect();
    let prefix = ParameterPrefix::parse("/kantox-challenge/dev").expect("valid prefix");
    let strategy = (0..seeds.len(), proptest::collection::vec(edit(), 0..6));
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(i, edits)| {
        let raw = apply(&seeds[i], &edits);
        let parsed = ParameterName::from_path_segment(&raw);
        let expected = reference(&raw);
        prop_assert_eq!(
            parsed.as_ref().ok().map(|n| n.as_str().to_owned()),
            expected.clone(),
            "input {:?}",
            raw
        );
        if let Ok(name) = parsed {
            // Re-encoding the accepted name and parsing again is the identity.
            let again = ParameterName::from_path_segment(name.as_str()).expect("accepted again");
            prop_assert_eq!(again.as_str(), name.as_str());
            // The edge's router hands the same remainder to the parser.
            let path = format!("/api/parameter/{raw}");
            prop_assert_eq!(
                Route::match_path(&path, true),
                Route::Parameter(raw.as_str())
            );
            // Under the prefix, or refused for the whole name's limits: never elsewhere.
            if let Ok(full) = name.full_name(&prefix) {
                prop_assert!(full.starts_with("/kantox-challenge/dev/"), "{}", full);
                prop_assert_eq!(prefix.strip(&full), Some(name.as_str()));
                prop_assert!(!full.split('/').any(|s| s == ".." || s == "."));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
