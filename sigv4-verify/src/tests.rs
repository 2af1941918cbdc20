//! The verifier against the AWS SigV4 test suite (`tests/fixtures/sigv4/v4`).
//!
//! Each case's `header-signed-request.txt` is fed to the verifier as a received request; the canonical
//! request, string to sign and signature must equal the suite's. The suite's signer is given the
//! *decoded* path and encodes it once, so the path handed to the verifier here is the request line's
//! path percent-decoded (on the wire, SDKs sign Bedrock's already-encoded path, see `Request::path`).
//!
//! Skipped: the `normalize: false` cases (S3-style signing keeps `.`/`..` and `//` segments, which no
//! Bedrock client does), and `double-encode-path` / `double-url-encode`, which carry no
//! `context.json` or expected signature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::path::{Path, PathBuf};

fn suite() -> PathBuf {
    crate::fixtures_dir().join("sigv4/v4")
}

struct Parsed {
    method: String,
    path: Vec<u8>,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Parses the suite's raw HTTP text; header lines starting with whitespace continue the previous one.
fn parse_http(raw: &[u8]) -> Parsed {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = rest.rsplit_once(' ').unwrap().0;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    Parsed {
        method: method.to_owned(),
        path: percent_encoding::percent_decode_str(path).collect(),
        query: query.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

impl Parsed {
    fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
        }
    }
}

fn read(case: &Path, file: &str) -> String {
    std::fs::read_to_string(case.join(file)).unwrap()
}

#[test]
fn header_signing_cases_match_the_suite() {
    let mut checked = 0;
    for entry in std::fs::read_dir(suite()).unwrap() {
        let case = entry.unwrap().path();
        let Ok(context) = std::fs::read_to_string(case.join("context.json")) else {
            continue;
        };
        let context: serde_json::Value = serde_json::from_str(&context).unwrap();
        if context["normalize"] != true {
            continue;
        }
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let parsed = parse_http(&std::fs::read(case.join("header-signed-request.txt")).unwrap());
        let req = parsed.request();
        let auth = parse_authorization(header(&parsed.headers, "authorization").unwrap()).unwrap();
        let amz_date = header(&parsed.headers, "x-amz-date").unwrap();

        let canonical = canonical_request(
            &req,
            &auth.signed_headers,
            &payload_hash(&req, &parsed.body).unwrap(),
        );
        assert_eq!(
            canonical,
            read(&case, "header-canonical-request.txt"),
            "{name}"
        );
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        assert_eq!(
            string_to_sign(amz_date, &scope, &canonical),
            read(&case, "header-string-to-sign.txt"),
            "{name}"
        );
        assert_eq!(
            auth.signature,
            read(&case, "header-signature.txt").trim(),
            "{name}"
        );

        let secret = context["credentials"]["secret_access_key"]
            .as_str()
            .unwrap();
        assert_eq!(
            check_signature(&req, &parsed.body, &auth, secret, amz_date),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            check_signature(&req, &parsed.body, &auth, "wrong-secret", amz_date),
            Err(AuthError::SignatureMismatch),
            "{name}"
        );
        checked += 1;
    }
    // 40 cases, less the 7 unnormalized ones and the 2 without expectations.
    assert_eq!(checked, 31);
}

/// A key pair as a caller's lookup would find it.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    access_key_id: &'static str,
    secret_access_key: &'static str,
    session_token: Option<&'static str>,
}

impl SigningKey for &Key {
    fn secret_access_key(&self) -> &str {
        self.secret_access_key
    }

    fn session_token(&self) -> Option<&str> {
        self.session_token
    }
}

fn vanilla() -> (Parsed, Key) {
    let case = suite().join("get-vanilla");
    let parsed = parse_http(&std::fs::read(case.join("header-signed-request.txt")).unwrap());
    let key = Key {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    (parsed, key)
}

fn verify_parsed(
    parsed: &Parsed,
    keys: &[Key],
    region: RegionPolicy<'_>,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    let lookup = |id: &str| keys.iter().find(|k| k.access_key_id == id);
    verify(&parsed.request(), &parsed.body, lookup, region, now).map(|_| ())
}

/// [`verify_parsed`] with one known key, for a verifier in us-east-1.
fn verify_in_us_east_1(parsed: &Parsed, key: &Key, now: OffsetDateTime) -> Result<(), AuthError> {
    verify_parsed(
        parsed,
        std::slice::from_ref(key),
        RegionPolicy::Only("us-east-1"),
        now,
    )
}

/// The suite signs for service "service"; the vanilla request re-scoped to bedrock (which breaks
/// the suite's signature, so only the head checks can pass).
fn vanilla_for_bedrock() -> (Parsed, Key) {
    let (mut parsed, key) = vanilla();
    for (_, value) in parsed
        .headers
        .iter_mut()
        .filter(|(n, _)| n == "authorization")
    {
        *value = value.replace("/service/", "/bedrock/");
    }
    (parsed, key)
}

#[test]
fn scope_checks_come_before_the_signature() {
    let (parsed, key) = vanilla();
    let signed_at = time::macros::datetime!(2015-08-30 12:36:00 UTC);
    // The suite signs for service "service"; everything before that check must pass.
    assert_eq!(
        verify_in_us_east_1(&parsed, &key, signed_at),
        Err(AuthError::WrongService("bedrock".to_owned()))
    );
    assert_eq!(
        verify_parsed(
            &parsed,
            std::slice::from_ref(&key),
            RegionPolicy::Only("eu-west-1"),
            signed_at
        ),
        Err(AuthError::WrongRegion("us-east-1".to_owned()))
    );
    assert_eq!(
        verify_parsed(&parsed, &[], RegionPolicy::Only("us-east-1"), signed_at),
        Err(AuthError::UnknownKey)
    );
}

#[test]
fn stale_dates_and_missing_tokens_are_refused() {
    let (parsed, mut key) = vanilla_for_bedrock();
    let later = time::macros::datetime!(2015-08-30 12:42:00 UTC);
    assert_eq!(
        verify_in_us_east_1(&parsed, &key, later),
        Err(AuthError::Expired("20150830T123600Z".to_owned()))
    );
    key.session_token = Some("token");
    let signed_at = time::macros::datetime!(2015-08-30 12:36:00 UTC);
    assert_eq!(
        verify_in_us_east_1(&parsed, &key, signed_at),
        Err(AuthError::BadSessionToken)
    );
    key.session_token = None;
    // The scope now names bedrock, so the suite's signature no longer matches.
    assert_eq!(
        verify_parsed(&parsed, &[key], RegionPolicy::Only("us-east-1"), signed_at),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn bedrock_paths_are_encoded_a_second_time() {
    assert_eq!(
        canonical_uri(b"/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
        "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
    );
}

#[test]
fn missing_authorization_is_its_own_error() {
    let (mut parsed, key) = vanilla();
    parsed.headers.retain(|(n, _)| n != "authorization");
    assert_eq!(
        verify_parsed(
            &parsed,
            &[key],
            RegionPolicy::Only("us-east-1"),
            OffsetDateTime::now_utc()
        ),
        Err(AuthError::Missing)
    );
}

#[test]
fn any_region_policy_accepts_every_region_but_still_checks_the_rest() {
    let (parsed, key) = vanilla_for_bedrock();
    let signed_at = time::macros::datetime!(2015-08-30 12:36:00 UTC);
    let keys = std::slice::from_ref(&key);
    let lookup = |id: &str| keys.iter().find(|k| k.access_key_id == id);
    let checked = check_head(&parsed.request(), lookup, RegionPolicy::Any, signed_at).unwrap();
    assert_eq!(*checked.claimed_key(), &key);
    // The head was fine; the body step is where the re-scoped signature fails.
    assert_eq!(
        checked.check_body(&parsed.request(), &parsed.body),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn a_checked_head_hands_back_the_key_once_the_signature_holds() {
    // check_head pins the service to bedrock and the suite signs for "service", so the head is
    // built here as check_head would have built it.
    let (parsed, key) = vanilla();
    let auth = parse_authorization(header(&parsed.headers, "authorization").unwrap()).unwrap();
    let checked = HeadChecked {
        auth,
        amz_date: "20150830T123600Z".to_owned(),
        key: &key,
    };
    assert_eq!(
        checked.check_body(&parsed.request(), &parsed.body),
        Ok(&key)
    );
}

#[test]
fn a_tampered_body_fails_the_signature() {
    let case = suite().join("post-vanilla-query");
    let mut parsed = parse_http(&std::fs::read(case.join("header-signed-request.txt")).unwrap());
    let auth = parse_authorization(header(&parsed.headers, "authorization").unwrap()).unwrap();
    let amz_date = header(&parsed.headers, "x-amz-date").unwrap().to_owned();
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    assert_eq!(
        check_signature(&parsed.request(), &parsed.body, &auth, secret, &amz_date),
        Ok(())
    );
    parsed.body.extend_from_slice(b"tampered");
    assert_eq!(
        check_signature(&parsed.request(), &parsed.body, &auth, secret, &amz_date),
        Err(AuthError::SignatureMismatch)
    );
}
