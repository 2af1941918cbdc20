//! The fast signer is only worth its speed if it signs exactly as aws-sigv4 does. This property
//! test draws thousands of requests of the shapes the gateway sends (any model id percent-encoded
//! as the gateway encodes it, ARNs, stray `%`, any body, region, date, credentials with or without
//! a session token, Bedrock's optional request headers with untidy whitespace; GETs with an empty
//! body and a query as a client may write it: repeated and unsorted names, `+`, encoded and stray
//! `%`, names without `=`, empty pairs) and requires the same headers, byte for byte, from both.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use percent_encoding::utf8_percent_encode;
use proptest::prelude::*;

use super::PATH_LABEL;
use super::tests::sdk_sign;
use super::{BEDROCK_SERVICE, Signed, Signer, Unsigned};

/// Enough cases to cover every reserved character in several positions on each run.
const CASES: u32 = 4000;

/// Characters a model id may hold in the wild, weighted towards the ones URI encoding treats
/// specially: RFC 3986's reserved set, `%`, space, and a few non-ASCII letters.
fn model_id() -> impl Strategy<Value = String> {
    let plain =
        proptest::string::string_regex("[a-zA-Z0-9._~:/?#\\[\\]@!$&'()*+,;=% \\-é😀]{1,60}")
            .unwrap();
    let arn = (
        region(),
        "[0-9]{12}",
        "(inference-profile|application-inference-profile|foundation-model|provisioned-model)",
        "[a-z0-9.:-]{1,40}",
    )
        .prop_map(|(region, account, kind, id)| {
            format!("arn:aws:bedrock:{region}:{account}:{kind}/{id}")
        });
    prop_oneof![plain, arn]
}

fn region() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z]{2}-(gov-)?[a-z]{4,9}-[1-9]").unwrap()
}

fn credentials() -> impl Strategy<Value = Credentials> {
    (
        "(AKIA|ASIA)[A-Z0-9]{16}",
        "[A-Za-z0-9+/]{40}",
        proptest::option::of("[A-Za-z0-9+/=]{16,400}"),
    )
        .prop_map(|(id, secret, token)| Credentials::new(id, secret, token, None, "proptest"))
}

/// Seconds from 2000 to 2099, so every date field width is exercised.
fn time() -> impl Strategy<Value = SystemTime> {
    (946_684_800u64..4_102_444_800).prop_map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// Bedrock's optional InvokeModel headers, with values a client might send: inner runs of spaces
/// and padding that SigV4 canonicalisation must trim and collapse the same way.
fn optional_headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let names = [
        "x-amzn-bedrock-guardrailidentifier",
        "x-amzn-bedrock-guardrailversion",
        "x-amzn-bedrock-trace",
        "x-amzn-bedrock-performanceconfig-latency",
        "x-amzn-bedrock-service-tier",
    ];
    proptest::collection::vec(
        (
            0..names.len(),
            "[ ]{0,2}[!-~]{1,20}([ ]{1,3}[!-~]{1,10})?[ ]{0,2}",
        ),
        0..4,
    )
    .prop_map(move |picked| {
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        for (i, value) in picked {
            if headers.iter().all(|(n, _)| *n != names[i]) {
                headers.push((names[i], value));
            }
        }
        headers
    })
}

/// A query as it may arrive from a client and go upstream unchanged: characters a URI allows in
/// a query, weighted towards the ones canonicalisation treats specially.
fn query() -> impl Strategy<Value = String> {
    let part = "([a-zA-Z0-9._~!$'()*,;:@/?+-]|%[0-9A-Fa-f]{2}|%){0,12}";
    let pair = prop_oneof![
        (part, part).prop_map(|(n, v)| format!("{n}={v}")),
        part.prop_map(|n| n.to_owned()),
        (
            "(maxResults|nextToken|statusEquals|submitTimeAfter|sortOrder)",
            part
        )
            .prop_map(|(n, v)| format!("{n}={v}")),
    ];
    proptest::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&"))
}

/// A request line of one of the gateway's upstream operations: a model operation, a guardrail, an
/// async invocation (by ARN, or listed with a query), an agent-runtime operation.
fn method_path_query() -> impl Strategy<Value = (&'static str, String, String)> {
    let model = (
        model_id(),
        "(converse|converse-stream|invoke|invoke-with-response-stream|count-tokens)",
    )
        .prop_map(|(model, operation)| {
            let path = format!(
                "/model/{}/{operation}",
                utf8_percent_encode(&model, PATH_LABEL)
            );
            ("POST", path, String::new())
        });
    let guardrail = ("[a-z0-9]{1,12}", "(DRAFT|[0-9]{1,3})").prop_map(|(id, version)| {
        (
            "POST",
            format!("/guardrail/{id}/version/{version}/apply"),
            String::new(),
        )
    });
    let get_async = model_id().prop_map(|arn| {
        let path = format!("/async-invoke/{}", utf8_percent_encode(&arn, PATH_LABEL));
        ("GET", path, String::new())
    });
    let list_async = query().prop_map(|q| ("GET", "/async-invoke".to_owned(), q));
    let agent = prop_oneof![
        Just("/rerank".to_owned()),
        Just("/retrieveAndGenerate".to_owned()),
        Just("/retrieveAndGenerateStream".to_owned()),
        "[A-Z0-9]{10}".prop_map(|kb| format!("/knowledgebases/{kb}/retrieve")),
    ]
    .prop_map(|path| ("POST", path, String::new()));
    prop_oneof![4 => model, 1 => guardrail, 1 => get_async, 2 => list_async, 1 => agent]
}

fn sorted(signed: Signed<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = signed.headers().map(|(n, v)| (n.to_owned(), v)).collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn signs_exactly_as_aws_sigv4(
        (method, path, query) in method_path_query(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        region in region(),
        credentials in credentials(),
        time in time(),
        content_type in "(application/json|application/x-amz-json-1\\.1|text/plain; charset=utf-8)",
        local in any::<bool>(),
        agent in any::<bool>(),
        extra in optional_headers(),
    ) {
        let host = match (local, agent) {
            (true, _) => "127.0.0.1:7001".to_owned(),
            (false, false) => format!("bedrock-runtime.{region}.amazonaws.com"),
            (false, true) => format!("bedrock-agent-runtime.{region}.amazonaws.com"),
        };
        // A GET goes with an empty body and no content type, as the gateway sends it.
        let body: &[u8] = if method == "GET" { &[] } else { &body };
        let mut headers: Vec<(&str, &str)> = vec![("host", &host)];
        if method == "POST" {
            headers.push(("content-type", &content_type));
        }
        headers.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
        let credentials = Arc::new(credentials);
        let signer = Signer::new(region.clone(), BEDROCK_SERVICE);
        let request = Unsigned { method, path: &path, query: &query, headers: &headers, body };
        let ours = sorted(signer.sign(request, &credentials, time).unwrap());
        let sdk = sdk_sign(request, &credentials, &region, time);
        prop_assert_eq!(ours, sdk, "{} {}?{}", method, path, query);
    }
}
