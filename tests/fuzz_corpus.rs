//! Replays the fuzzers' saved corpora (and the event-stream fixtures in `tests/fixtures/`) as ordinary tests, so
//! every input a fuzzer once found interesting keeps being checked without nightly Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bedrock_balancer::fuzz_checks;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn corpus(target: &str) -> Vec<PathBuf> {
    files(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz/corpus")
            .join(target),
    )
}

#[test]
fn eventstream_decoder_corpus_replays_clean() {
    let mut inputs = corpus("eventstream_decoder");
    inputs.extend(files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eventstream"),
    ));
    assert!(inputs.len() >= 20, "{} inputs", inputs.len());
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        fuzz_checks::eventstream_decoder(&data);
    }
}

#[test]
fn openai_chat_request_corpus_replays_clean() {
    let inputs = corpus("openai_chat_request");
    assert!(inputs.len() >= 10, "{} inputs", inputs.len());
    for path in inputs {
        fuzz_checks::openai_chat_request(&std::fs::read(&path).unwrap());
    }
}
