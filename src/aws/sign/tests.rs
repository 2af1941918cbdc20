//! The signer against the AWS SigV4 test suite (`tests/fixtures/sigv4/v4`), against aws-sigv4's
//! general signer on Bedrock-shaped requests, and its key cache across rotation and midnight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn suite() -> PathBuf {
    crate::fixtures_dir().join("sigv4/v4")
}

struct Case {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Parses the suite's `request.txt`: request line, `Name:value` headers (a line starting with
/// whitespace continues the previous value), blank line, body.
fn parse_request(text: &str) -> Case {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap().split(' ');
    let method = request_line.next().unwrap().to_owned();
    let path = request_line.next().unwrap().to_owned();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.1.push('\n');
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Case {
        method,
        path,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

fn expected_authorization(dir: &Path) -> String {
    read(dir, "header-signed-request.txt")
        .lines()
        .find_map(|l| l.strip_prefix("Authorization:"))
        .unwrap()
        .to_owned()
}

fn parse_time(rfc3339: &str) -> SystemTime {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .into()
}

/// Every header-signing case of the AWS suite that applies to Bedrock: path normalisation on and
/// an unsigned body (`normalize: false` is S3-only; `sign_body` adds a header Bedrock does not
/// use; `omit_session_token` adds the token after signing, and Bedrock wants it signed). For
/// each, the canonical request, the string to sign, the signature and the `Authorization` header
/// must match to the byte.
///
/// Cases with a query sign it canonicalised. `get-space-normalized` gives the path `%20` already
/// encoded and expects it encoded once; Bedrock, like every non-S3 service, wants the wire path
/// encoded a second time, which `bedrock_paths_sign_like_aws_sigv4` checks.
#[test]
fn matches_the_aws_signing_test_suite() {
    let (mut checked, mut with_query) = (0, 0);
    let mut dirs: Vec<_> = std::fs::read_dir(suite())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(context) = std::fs::read_to_string(dir.join("context.json")) else {
            continue; // the two legacy cases carry no context or expectations
        };
        let context: serde_json::Value = serde_json::from_str(&context).unwrap();
        if context["normalize"] != true
            || context["sign_body"] == true
            || context["omit_session_token"] == true
        {
            continue;
        }
        let case = parse_request(&read(&dir, "request.txt"));
        let (path, query) = case.path.split_once('?').unwrap_or((&case.path, ""));
        if path.contains('%') {
            continue;
        }
        let creds = &context["credentials"];
        let credentials = Arc::new(Credentials::new(
            creds["access_key_id"].as_str().unwrap(),
            creds["secret_access_key"].as_str().unwrap(),
            creds["token"].as_str().map(str::to_owned),
            None,
            "test",
        ));
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let request = Unsigned {
            method: &case.method,
            path,
            query,
            headers: &headers,
            body: &case.body,
        };
        let (region, service) = (
            context["region"].as_str().unwrap(),
            context["service"].as_str().unwrap(),
        );
        let time = parse_time(context["timestamp"].as_str().unwrap());
        let signer = Signer::new(region, service);
        let signed = signer
            .sign(request, &credentials, time)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        with_query += usize::from(!query.is_empty());

        let amz_date = amz_date(time).unwrap();
        let mut canonical = String::new();
        write_canonical_request(
            &mut canonical,
            &mut String::new(),
            request,
            &amz_date,
            credentials.session_token(),
        );
        assert_eq!(
            canonical,
            read(&dir, "header-canonical-request.txt"),
            "{}",
            dir.display()
        );
        let mut to_sign = String::new();
        write_string_to_sign(
            &mut to_sign,
            &amz_date,
            region,
            service,
            &Sha256::digest(canonical.as_bytes()),
        );
        assert_eq!(
            to_sign,
            read(&dir, "header-string-to-sign.txt"),
            "{}",
            dir.display()
        );
        assert!(
            signed
                .authorization
                .ends_with(&format!("Signature={}", read(&dir, "header-signature.txt"))),
            "{}",
            dir.display()
        );
        assert_eq!(
            signed.authorization,
            expected_authorization(&dir),
            "{}",
            dir.display()
        );
        checked += 1;
    }
    assert_eq!(
        (checked, with_query),
        (27, 7),
        "cases checked, with a query"
    );
}

/// aws-sigv4's general signer, as the oracle for requests shaped like the gateway's.
pub(crate) fn sdk_sign(
    request: Unsigned<'_>,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(BEDROCK_SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = request.headers;
    let path = request.path;
    let host = headers.iter().find(|(n, _)| *n == "host").unwrap().1;
    let url = if request.query.is_empty() {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}{path}?{}", request.query)
    };
    let signable = SignableRequest::new(
        request.method,
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut out: Vec<(String, String)> = instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    out.sort();
    out
}

fn sorted(signed: Signed<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = signed.headers().map(|(n, v)| (n.to_owned(), v)).collect();
    out.sort();
    out
}

#[test]
fn bedrock_paths_sign_like_aws_sigv4() {
    let paths = [
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-v2/converse-stream",
        "/model/amazon.titan-embed-text-v2%3A0/invoke",
    ];
    let headers = [
        ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
        ("content-type", "application/json"),
    ];
    let with_token = Credentials::new(
        "ASIAEXAMPLE",
        "se/cr+et",
        Some("tok=en/1".into()),
        None,
        "t",
    );
    let without = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "t",
    );
    for credentials in [with_token, without] {
        let credentials = Arc::new(credentials);
        for region in ["us-east-1", "eu-west-3"] {
            let signer = Signer::new(region, BEDROCK_SERVICE);
            for (i, path) in paths.iter().enumerate() {
                let time = at(1_700_000_000 + 37_321 * i as u64);
                let body = format!("{{\"n\":{i}}}");
                let request = Unsigned {
                    method: "POST",
                    path,
                    query: "",
                    headers: &headers,
                    body: body.as_bytes(),
                };
                let ours = sorted(signer.sign(request, &credentials, time).unwrap());
                let sdk = sdk_sign(request, &credentials, region, time);
                assert_eq!(ours, sdk, "{path} in {region}");
            }
        }
    }
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn sign_once(signer: &Signer, credentials: &Arc<Credentials>, time: SystemTime) -> String {
    let headers = [("host", "example.amazonaws.com")];
    let request = Unsigned {
        method: "POST",
        path: "/model/m/converse",
        query: "",
        headers: &headers,
        body: b"{}",
    };
    signer
        .sign(request, credentials, time)
        .unwrap()
        .authorization
}

/// A cached key must give what a fresh derivation gives, and must never outlive the credentials or
/// the UTC day it was derived for.
#[test]
fn the_cached_key_follows_rotation_and_the_day() {
    let signer = Signer::new("us-east-1", BEDROCK_SERVICE);
    let fresh =
        |c: &Arc<Credentials>, t| sign_once(&Signer::new("us-east-1", BEDROCK_SERVICE), c, t);
    let first = Arc::new(Credentials::new("AKID", "secret-1", None, None, "t"));
    let before_midnight = parse_time("2024-03-09T23:59:59Z");
    let a = sign_once(&signer, &first, before_midnight);
    let cached = signer.key.load_full().unwrap();
    assert_eq!(a, fresh(&first, before_midnight));
    // Same credentials, same day: the key is reused, not derived again.
    assert_eq!(
        sign_once(&signer, &first, before_midnight - Duration::from_secs(3600)),
        fresh(&first, before_midnight - Duration::from_secs(3600))
    );
    assert!(Arc::ptr_eq(&cached, &signer.key.load_full().unwrap()));

    // Rotated: same key id, new secret.
    let rotated = Arc::new(Credentials::new("AKID", "secret-2", None, None, "t"));
    let b = sign_once(&signer, &rotated, before_midnight);
    assert_eq!(b, fresh(&rotated, before_midnight));
    assert_ne!(a, b);

    // The next UTC day.
    let after_midnight = before_midnight + Duration::from_secs(1);
    let c = sign_once(&signer, &rotated, after_midnight);
    assert!(c.contains("/20240310/us-east-1/bedrock/aws4_request"));
    assert_eq!(c, fresh(&rotated, after_midnight));

    // Back to the first credentials: a new key again, never the rotated one.
    assert_eq!(
        sign_once(&signer, &first, after_midnight),
        fresh(&first, after_midnight)
    );
}

#[test]
fn signed_headers_carry_the_token_and_no_secret() {
    let credentials = Arc::new(Credentials::new(
        "ASIA",
        "the-secret",
        Some("the-token".into()),
        None,
        "t",
    ));
    let signer = Signer::new("us-west-2", BEDROCK_SERVICE);
    let headers = [("host", "h"), ("content-type", "application/json")];
    let request = Unsigned {
        method: "POST",
        path: "/model/m/converse",
        query: "",
        headers: &headers,
        body: b"{}",
    };
    let time = parse_time("2024-01-02T03:04:05Z");
    let signed = sorted(signer.sign(request, &credentials, time).unwrap());
    let names: Vec<&str> = signed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["authorization", "x-amz-date", "x-amz-security-token"]
    );
    assert_eq!(signed[1].1, "20240102T030405Z");
    assert_eq!(signed[2].1, "the-token");
    assert!(
        signed[0].1.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
        )
    );
    assert!(!format!("{signer:?}").contains("the-secret"));
    assert!(signed.iter().all(|(_, v)| !v.contains("the-secret")));
}

#[test]
fn a_query_inside_the_path_is_refused() {
    let credentials = Arc::new(Credentials::new("AKID", "s", None, None, "t"));
    let request = Unsigned {
        method: "GET",
        path: "/async-invoke?maxResults=1",
        query: "",
        headers: &[("host", "h")],
        body: b"",
    };
    let signed = Signer::new("us-east-1", BEDROCK_SERVICE).sign(request, &credentials, at(0));
    assert!(matches!(signed, Err(SignError::Query)));
}
