//! SigV4 signing of upstream requests, written for the shapes the gateway sends: a handful of
//! headers, a path, and now and then a query (`GET /async-invoke?maxResults=..`).
//!
//! `aws_sigv4::http_request::sign` handles any request, and pays for it: it re-parses the URL,
//! copies the identity and derives the signing key (four HMACs) on every call. Here the canonical
//! request is written straight into one buffer, and the key is derived once per credentials and
//! UTC day and kept in the target's [`Signer`]. The HMAC primitives are aws-sigv4's own.
//!
//! The region always comes from the target's configuration, never from a host name, so a VPC
//! endpoint or the simulator on `127.0.0.1` is signed exactly like the public endpoint.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use aws_credential_types::Credentials;
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Everything but RFC 3986's unreserved characters, as AWS SDKs encode a path label: `:` in a
/// model id becomes `%3A`, the `/` of an ARN `%2F`.
pub const PATH_LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The signing name of Bedrock Runtime (Smithy `aws.auth#sigv4`).
pub const BEDROCK_SERVICE: &str = "bedrock";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const DATE_HEADER: &str = "x-amz-date";
const TOKEN_HEADER: &str = "x-amz-security-token";

/// Room for a Bedrock canonical request (method, model path, four headers, hashes) without
/// growing the buffer; a longer one still works, with one reallocation.
const CANONICAL_CAPACITY: usize = 512;

/// The parts of a request that enter the signature.
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    pub method: &'a str,
    /// The path exactly as it goes on the wire (already percent-encoded), without the query.
    pub path: &'a str,
    /// The query exactly as it goes on the wire, without the `?`; empty for none.
    pub query: &'a str,
    /// Headers to sign, `host` included; every one given is signed.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("could not sign the upstream request: the path holds a `?`; pass the query apart")]
    Query,
    #[error("could not sign the upstream request: the time is outside what SigV4 can express")]
    Time,
}

/// The headers to add to a signed request.
#[derive(Debug)]
pub struct Signed<'c> {
    pub authorization: String,
    pub amz_date: String,
    /// The session token of temporary credentials, which is signed and must be sent.
    pub security_token: Option<&'c str>,
}

impl Signed<'_> {
    pub fn headers(self) -> impl Iterator<Item = (&'static str, String)> {
        [
            Some(("authorization", self.authorization)),
            Some((DATE_HEADER, self.amz_date)),
            self.security_token
                .map(|token| (TOKEN_HEADER, token.to_owned())),
        ]
        .into_iter()
        .flatten()
    }
}

/// A signing key derived for one set of credentials on one UTC day.
struct DerivedKey {
    /// Held, not just compared by address: while this `Arc` lives, no other credentials can take
    /// its address, so pointer identity cannot mistake rotated credentials for these.
    credentials: Arc<Credentials>,
    /// `YYYYMMDD`, the day the key is scoped to.
    date: [u8; 8],
    key: Box<[u8]>,
}

/// Signs for one region and service, reusing the derived key until the credentials or the UTC
/// day change. Reading the cached key is lock-free; a miss derives a new key and publishes it
/// (concurrent misses derive the same key, so whichever store wins is right).
pub struct Signer {
    region: String,
    service: String,
    key: ArcSwapOption<DerivedKey>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The derived key is a secret; only say where it signs for.
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(region: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            service: service.into(),
            key: ArcSwapOption::empty(),
        }
    }

    pub fn sign<'c>(
        &self,
        request: Unsigned<'_>,
        credentials: &'c Arc<Credentials>,
        time: SystemTime,
    ) -> Result<Signed<'c>, SignError> {
        if request.path.contains('?') {
            return Err(SignError::Query);
        }
        let amz_date = amz_date(time)?;
        let date = &amz_date[..8];
        let token = credentials.session_token();
        let mut authorization = String::with_capacity(256);
        let _ = write!(
            authorization,
            "{ALGORITHM} Credential={}/{date}/{}/{}/aws4_request, SignedHeaders=",
            credentials.access_key_id(),
            self.region,
            self.service
        );
        let mut buffer = String::with_capacity(CANONICAL_CAPACITY);
        write_canonical_request(&mut buffer, &mut authorization, request, &amz_date, token);
        let canonical_hash = Sha256::digest(buffer.as_bytes());
        buffer.clear();
        write_string_to_sign(
            &mut buffer,
            &amz_date,
            &self.region,
            &self.service,
            &canonical_hash,
        );

        let cached = self.key.load();
        let fresh;
        let key = match cached.as_deref() {
            Some(k) if Arc::ptr_eq(&k.credentials, credentials) && k.date == date.as_bytes() => {
                &k.key
            }
            _ => {
                fresh = Arc::new(self.derive(credentials, time, date));
                self.key.store(Some(Arc::clone(&fresh)));
                &fresh.key
            }
        };
        let signature = v4::calculate_signature(key, buffer.as_bytes());
        authorization.push_str(", Signature=");
        authorization.push_str(&signature);
        Ok(Signed {
            authorization,
            amz_date,
            security_token: token,
        })
    }

    fn derive(&self, credentials: &Arc<Credentials>, time: SystemTime, date: &str) -> DerivedKey {
        let mut day = [0u8; 8];
        day.copy_from_slice(date.as_bytes());
        let key = v4::generate_signing_key(
            credentials.secret_access_key(),
            time,
            &self.region,
            &self.service,
        );
        DerivedKey {
            credentials: Arc::clone(credentials),
            date: day,
            key: key.as_ref().into(),
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn amz_date(time: SystemTime) -> Result<String, SignError> {
    let t = time::OffsetDateTime::from(time);
    if !(0..=9999).contains(&t.year()) {
        return Err(SignError::Time);
    }
    let mut out = String::with_capacity(16);
    let _ = write!(
        out,
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(out)
}

/// Writes the canonical request into `out`, and the `;`-joined signed header names both into
/// `out` and onto `signed_names` (the `Authorization` header needs them too).
fn write_canonical_request(
    out: &mut String,
    signed_names: &mut String,
    request: Unsigned<'_>,
    amz_date: &str,
    token: Option<&str>,
) {
    out.push_str(request.method);
    out.push('\n');
    write_canonical_uri(out, request.path);
    out.push('\n');
    write_canonical_query(out, request.query);
    out.push('\n');

    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(request.headers.len() + 2);
    headers.extend_from_slice(request.headers);
    headers.push((DATE_HEADER, amz_date));
    if let Some(token) = token {
        headers.push((TOKEN_HEADER, token));
    }
    // Stable, so repeated headers keep their order, which the signature depends on.
    headers.sort_by(|a, b| cmp_ignore_case(a.0, b.0));
    let names_start = signed_names.len();
    let mut previous: Option<&str> = None;
    for (name, value) in &headers {
        if previous.is_some_and(|p| p.eq_ignore_ascii_case(name)) {
            out.push(',');
        } else {
            if previous.is_some() {
                out.push('\n');
                signed_names.push(';');
            }
            push_lowercase(out, name);
            push_lowercase(signed_names, name);
            out.push(':');
            previous = Some(name);
        }
        push_collapsed(out, value);
    }
    out.push_str("\n\n");
    out.push_str(&signed_names[names_start..]);
    out.push('\n');
    push_hex(out, &Sha256::digest(request.body));
}

fn write_string_to_sign(
    out: &mut String,
    amz_date: &str,
    region: &str,
    service: &str,
    canonical_hash: &[u8],
) {
    let _ = write!(
        out,
        "{ALGORITHM}\n{amz_date}\n{}/{region}/{service}/aws4_request\n",
        &amz_date[..8]
    );
    push_hex(out, canonical_hash);
}

/// The path normalised (no empty, `.` or `..` segments; a trailing slash kept) with each segment
/// URI-encoded once more: every service but S3 signs the wire path encoded a second time, so a
/// model id's `%3A` is signed as `%253A`.
fn write_canonical_uri(out: &mut String, path: &str) {
    let needs_normalising =
        path.is_empty() || path.contains("//") || path.split('/').any(|s| s == "." || s == "..");
    if !needs_normalising {
        push_uri_encoded(out, path);
        return;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    out.push('/');
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_uri_encoded(out, segment);
    }
    let trailing = path
        .rsplit('/')
        .next()
        .is_some_and(|last| matches!(last, "" | "." | ".."));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
}

/// The query as aws-sigv4 canonicalises it: read as a form (`+` is a space, `%XX` decoded, a
/// name without `=` has an empty value, empty pairs skipped), each name and value encoded again
/// with everything but RFC 3986's unreserved characters as `%XX`, then sorted on the encoded pairs.
fn write_canonical_query(out: &mut String, query: &str) {
    if query.is_empty() {
        return;
    }
    let encode = |text: &str| {
        let spaced = text.replace('+', " ");
        let decoded = percent_encoding::percent_decode_str(&spaced).collect::<Vec<u8>>();
        let mut encoded = String::with_capacity(decoded.len());
        push_encoded(
            &mut encoded,
            String::from_utf8_lossy(&decoded).as_bytes(),
            false,
        );
        encoded
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
}

/// Every byte but `/` and RFC 3986's unreserved characters as `%XX`.
fn push_uri_encoded(out: &mut String, text: &str) {
    push_encoded(out, text.as_bytes(), true);
}

/// Every byte but RFC 3986's unreserved characters (and `/` when `keep_slash`) as `%XX`.
fn push_encoded(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
        }
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
    }
}

fn push_lowercase(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| c.to_ascii_lowercase()));
}

/// The value trimmed, with each run of whitespace inside it as one space.
fn push_collapsed(out: &mut String, value: &str) {
    for (i, word) in value.split_ascii_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod equivalence;
