//! The authenticator on requests built in memory; SigV4 requests are signed by aws-sigv4's general
//! signer (what AWS SDKs implement), so the hand-written verifier is checked against the real one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use actix_web::test::TestRequest;
use aws_credential_types::Credentials;
use sha2::{Digest, Sha256};

use super::*;
use crate::aws::sign::tests::sdk_sign;

const TEAM_A_KEY: &str = "sk-team-a-0123456789";
const TEAM_B_KEY: &str = "sk-team-b-9876543210";
const KEY_ID: &str = "AKIDBATCHJOBS";
const SECRET: &str = "batch/secret+key";
const PATH: &str = "/model/claude/converse";
const BODY: &[u8] = br#"{"messages":[]}"#;

/// team-a by key, team-b by digest only, batch-jobs by key pair.
fn authenticator() -> Authenticator {
    let team_b_digest = hex::encode(Sha256::digest(TEAM_B_KEY.as_bytes()));
    let yaml = format!(
        r#"
consumers:
  - {{ name: team-a, api_key: "{TEAM_A_KEY}" }}
  - {{ name: team-b, api_key_sha256: "{team_b_digest}" }}
  - {{ name: batch-jobs, aws_access_key_id: {KEY_ID}, aws_secret_access_key: "{SECRET}" }}
routes:
  - name: claude
    targets:
      - model:
          provider: bedrock
          name: anthropic.claude
          options: {{ bedrock: {{ aws_region: us-east-1 }} }}
"#
    );
    Authenticator::new(&crate::config::parse(&yaml, &|_| None).unwrap().consumers)
}

fn at(secs_after_epoch: u64) -> (SystemTime, OffsetDateTime) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs_after_epoch);
    (t, OffsetDateTime::from(t))
}

const SIGNED_AT: u64 = 1_750_000_000;

/// A converse request signed at `SIGNED_AT` by aws-sigv4 with the given key pair and region.
fn signed(key_id: &str, secret: &str, region: &str) -> TestRequest {
    let host = "gateway.internal:8080";
    let headers = [("host", host), ("content-type", "application/json")];
    let request = crate::aws::sign::Unsigned {
        method: "POST",
        path: PATH,
        query: "",
        headers: &headers,
        body: BODY,
    };
    let added = sdk_sign(
        request,
        &Credentials::new(key_id, secret, None, None, "test"),
        region,
        at(SIGNED_AT).0,
    );
    let mut req = TestRequest::post().uri(PATH);
    for (name, value) in headers
        .into_iter()
        .chain(added.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    {
        req = req.insert_header((name, value));
    }
    req
}

fn authenticate(
    auth: &Authenticator,
    req: TestRequest,
    now: OffsetDateTime,
    body: &[u8],
) -> Result<Caller, GatewayError> {
    let req = req.to_http_request();
    auth.check_head_at(&req, now)?.verify(body)
}

fn consumer(result: Result<Caller, GatewayError>) -> String {
    result.unwrap().consumer().unwrap().to_string()
}

fn refused(result: Result<Caller, GatewayError>) -> AuthReason {
    match result {
        Err(GatewayError::Unauthorized(reason)) => reason,
        other => panic!("expected a 401, got {other:?}"),
    }
}

fn bearer(key: &str) -> TestRequest {
    TestRequest::post().insert_header(("authorization", format!("Bearer {key}")))
}

#[test]
fn api_keys_name_their_consumer() {
    let auth = authenticator();
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        consumer(authenticate(&auth, bearer(TEAM_A_KEY), now, b"")),
        "team-a"
    );
    // Configured by digest only, the key itself never in config.
    assert_eq!(
        consumer(authenticate(&auth, bearer(TEAM_B_KEY), now, b"")),
        "team-b"
    );
    let x_api_key = TestRequest::post().insert_header(("x-api-key", TEAM_A_KEY));
    assert_eq!(consumer(authenticate(&auth, x_api_key, now, b"")), "team-a");
    // The scheme is case-insensitive (RFC 9110).
    let lower =
        TestRequest::post().insert_header(("authorization", format!("bearer {TEAM_B_KEY}")));
    assert_eq!(consumer(authenticate(&auth, lower, now, b"")), "team-b");
}

#[test]
fn wrong_missing_and_foreign_credentials_are_refused() {
    let auth = authenticator();
    let now = OffsetDateTime::now_utc();
    let wrong = bearer("sk-team-a-0123456788");
    assert_eq!(
        refused(authenticate(&auth, wrong, now, b"")),
        AuthReason::InvalidKey
    );
    let wrong = TestRequest::post().insert_header(("x-api-key", "nope"));
    assert_eq!(
        refused(authenticate(&auth, wrong, now, b"")),
        AuthReason::InvalidKey
    );
    assert_eq!(
        refused(authenticate(&auth, bearer(""), now, b"")),
        AuthReason::InvalidKey
    );
    assert_eq!(
        refused(authenticate(&auth, TestRequest::post(), now, b"")),
        AuthReason::Missing
    );
    let basic = TestRequest::post().insert_header(("authorization", "Basic dGVhbS1hOmtleQ=="));
    assert_eq!(
        refused(authenticate(&auth, basic, now, b"")),
        AuthReason::Malformed
    );
    // The digest is the credential, not something a client can send instead of the key.
    let digest = hex::encode(Sha256::digest(TEAM_B_KEY.as_bytes()));
    assert_eq!(
        refused(authenticate(&auth, bearer(&digest), now, b"")),
        AuthReason::InvalidKey
    );
}

#[test]
fn without_consumers_everyone_is_anonymous() {
    let auth = Authenticator::new(&[]);
    let caller = authenticate(&auth, TestRequest::post(), OffsetDateTime::now_utc(), b"").unwrap();
    assert_eq!(caller.consumer(), None);
    let caller = authenticate(&auth, bearer("anything"), OffsetDateTime::now_utc(), b"").unwrap();
    assert_eq!(caller, Caller::default());
}

#[test]
fn sigv4_in_any_region_names_its_consumer() {
    let auth = authenticator();
    let (_, now) = at(SIGNED_AT + 60);
    for region in ["us-east-1", "eu-central-1"] {
        let req = signed(KEY_ID, SECRET, region);
        assert_eq!(consumer(authenticate(&auth, req, now, BODY)), "batch-jobs");
    }
}

#[test]
fn sigv4_failures_are_told_apart() {
    let auth = authenticator();
    let (_, now) = at(SIGNED_AT);
    let wrong_secret = signed(KEY_ID, "not-the-secret", "us-east-1");
    assert_eq!(
        refused(authenticate(&auth, wrong_secret, now, BODY)),
        AuthReason::BadSignature
    );
    let unknown = signed("AKIDUNKNOWN", SECRET, "us-east-1");
    assert_eq!(
        refused(authenticate(&auth, unknown, now, BODY)),
        AuthReason::UnknownAccessKey
    );
    let tampered = signed(KEY_ID, SECRET, "us-east-1");
    assert_eq!(
        refused(authenticate(&auth, tampered, now, br#"{"messages":[1]}"#)),
        AuthReason::BadSignature
    );
    let (_, later) = at(SIGNED_AT + 6 * 60);
    let stale = signed(KEY_ID, SECRET, "us-east-1");
    assert_eq!(
        refused(authenticate(&auth, stale, later, BODY)),
        AuthReason::Expired
    );
    let truncated = TestRequest::post().insert_header((
        "authorization",
        format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/20250615/us-east-1/bedrock"),
    ));
    assert_eq!(
        refused(authenticate(&auth, truncated, now, BODY)),
        AuthReason::Malformed
    );
}

#[test]
fn a_head_that_fails_is_refused_before_the_body() {
    let auth = authenticator();
    let (_, later) = at(SIGNED_AT + 6 * 60);
    let req = signed(KEY_ID, SECRET, "us-east-1").to_http_request();
    // No body is needed to decide: check_head alone refuses.
    assert!(matches!(
        auth.check_head_at(&req, later),
        Err(GatewayError::Unauthorized(AuthReason::Expired))
    ));
}

#[test]
fn a_consumer_with_only_a_key_pair_has_no_api_key() {
    let auth = authenticator();
    // SigV4 consumers' secrets are not API keys.
    assert_eq!(
        refused(authenticate(
            &auth,
            bearer(SECRET),
            OffsetDateTime::now_utc(),
            b""
        )),
        AuthReason::InvalidKey
    );
}

/// Collects everything a subscriber writes, to check what a refusal logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn refusals_log_the_reason_and_never_the_credentials() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let auth = authenticator();
    let (_, now) = at(SIGNED_AT);
    let wrong_key = "sk-team-a-0123456788";
    tracing::subscriber::with_default(subscriber, || {
        let _ = authenticate(&auth, bearer(wrong_key), now, b"");
        let _ = authenticate(
            &auth,
            signed(KEY_ID, "not-the-secret", "us-east-1"),
            now,
            BODY,
        );
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains(r#""reason":"invalid_key""#), "{log}");
    assert!(lines[0].contains(r#""consumer":"unknown""#), "{log}");
    assert!(lines[1].contains(r#""reason":"bad_signature""#), "{log}");
    assert!(lines[1].contains(r#""consumer":"batch-jobs""#), "{log}");
    for secret in [
        wrong_key,
        "not-the-secret",
        SECRET,
        "Bearer",
        "AWS4-HMAC-SHA256",
        KEY_ID,
    ] {
        assert!(!log.contains(secret), "{secret} leaked into {log}");
    }
}
