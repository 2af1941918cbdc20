//! SigV4 verification, written by hand from the AWS documentation ("Create a signed AWS API
//! request") so that it checks signers instead of sharing their assumptions: the simulator uses it
//! to check the gateway's signer (aws-sigv4), and the gateway to authenticate AWS SDK clients.
//!
//! Verification comes in two steps because the signature covers the body: [`check_head`] checks
//! everything the request head decides (header syntax, known access key id, scope, date), and the
//! [`HeadChecked`] it returns is the only way to [`HeadChecked::check_body`], so a caller cannot
//! skip the head checks, and can refuse a bad head before reading a byte of body.

use hmac::digest::InvalidLength;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The signing name of Bedrock Runtime, which [`check_head`] and [`verify`] expect.
const BEDROCK: &str = "bedrock";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// AWS refuses a request whose `x-amz-date` is further than this from its own clock.
const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// A request head as the verifier needs it.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as the signer was given it, before the signer's own URI-encoding. AWS SDKs sign
    /// Bedrock with double encoding, so for a request off the wire this is the raw, still
    /// percent-encoded path.
    pub path: &'a [u8],
    pub query: &'a str,
    /// Header names lower-cased, in the order received; repeated names appear once per value.
    pub headers: &'a [(String, String)],
}

/// A received header map in the shape [`Request::headers`] takes.
impl<'a> Request<'a> {
    /// An actix request as the verifier sees it; `headers` is its [`header_list`].
    pub fn of(req: &'a actix_web::HttpRequest, headers: &'a [(String, String)]) -> Self {
        Self {
            method: req.method().as_str(),
            path: req.uri().path().as_bytes(),
            query: req.uri().query().unwrap_or(""),
            headers,
        }
    }
}

pub fn header_list(headers: &actix_web::http::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The credentials a request claims to be signed with, as the caller's key lookup finds them.
pub trait SigningKey {
    fn secret_access_key(&self) -> &str;
    /// A key with a session token only verifies requests that carry the same token.
    fn session_token(&self) -> Option<&str>;
}

/// Which regions a credential scope may name.
#[derive(Debug, Clone, Copy)]
pub enum RegionPolicy<'a> {
    /// A regional endpoint: only its own region, as AWS checks.
    Only(&'a str),
    /// A gateway that serves every region through one endpoint.
    Any,
}

/// Why a request was refused; each maps to the error AWS would answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("Credential should be scoped to a valid region, not '{0}'.")]
    WrongRegion(String),
    #[error("Credential should be scoped to correct service: '{0}'.")]
    WrongService(String),
    #[error("Signature expired: {0} is not within 5 minutes of the server time.")]
    Expired(String),
    #[error("The security token included in the request is invalid.")]
    BadSessionToken,
    #[error("The provided x-amz-content-sha256 header does not match what was computed.")]
    ContentHashMismatch,
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureMismatch,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header. Owned, so a checked head can be
/// kept while the body is read.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Whether an `Authorization` value claims SigV4 (as opposed to, say, a bearer token).
pub fn is_sigv4(authorization: &str) -> bool {
    authorization.starts_with(ALGORITHM)
}

pub fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    let malformed = |what: &str| AuthError::Malformed(format!("Authorization header: {what}"));
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| malformed("unsupported algorithm"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, val) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("expected key=value"))?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => signature = Some(val),
            _ => return Err(malformed("unknown field")),
        }
    }
    let credential = credential.ok_or_else(|| malformed("missing Credential"))?;
    let mut scope = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(malformed(
            "Credential must be KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed
            .ok_or_else(|| malformed("missing SignedHeaders"))?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: signature
            .ok_or_else(|| malformed("missing Signature"))?
            .to_owned(),
    })
}

/// A request whose head passed every check; only its signature, which covers the body, is left.
#[must_use = "the signature is not checked until check_body"]
#[derive(Debug)]
pub struct HeadChecked<K> {
    auth: Authorization,
    amz_date: String,
    key: K,
}

impl<K> HeadChecked<K> {
    /// The key the request claims, found by the caller's lookup; not yet proven by a signature.
    pub fn claimed_key(&self) -> &K {
        &self.key
    }
}

impl<K: SigningKey> HeadChecked<K> {
    /// Checks the signature over the head and the body; on success the request was signed with `K`.
    pub fn check_body(self, req: &Request<'_>, body: &[u8]) -> Result<K, AuthError> {
        check_signature(
            req,
            body,
            &self.auth,
            self.key.secret_access_key(),
            &self.amz_date,
        )?;
        Ok(self.key)
    }
}

/// Checks what the head decides: the header's syntax, the access key id (through `lookup`), the
/// scope's region and service, the date's skew from `now`, and the session token.
pub fn check_head<K: SigningKey>(
    req: &Request<'_>,
    lookup: impl FnOnce(&str) -> Option<K>,
    region: RegionPolicy<'_>,
    now: OffsetDateTime,
) -> Result<HeadChecked<K>, AuthError> {
    check_head_for(BEDROCK, req, lookup, region, now)
}

/// [`check_head`] for another service's signing name (the simulator's STS endpoint).
pub fn check_head_for<K: SigningKey>(
    service: &str,
    req: &Request<'_>,
    lookup: impl FnOnce(&str) -> Option<K>,
    region: RegionPolicy<'_>,
    now: OffsetDateTime,
) -> Result<HeadChecked<K>, AuthError> {
    let authorization = header(req.headers, "authorization").ok_or(AuthError::Missing)?;
    let auth = parse_authorization(authorization)?;
    let key = lookup(&auth.access_key_id).ok_or(AuthError::UnknownKey)?;
    if let RegionPolicy::Only(region) = region
        && auth.region != region
    {
        return Err(AuthError::WrongRegion(auth.region));
    }
    if auth.service != service {
        return Err(AuthError::WrongService(service.to_owned()));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(AuthError::Malformed(format!(
                "SignedHeaders must include {required}"
            )));
        }
    }
    let amz_date = header(req.headers, "x-amz-date")
        .ok_or_else(|| AuthError::Malformed("missing x-amz-date".to_owned()))?;
    let signed_at = parse_amz_date(amz_date)?;
    if (now - signed_at).abs() > MAX_CLOCK_SKEW {
        return Err(AuthError::Expired(amz_date.to_owned()));
    }
    if !amz_date.starts_with(auth.date.as_str()) || auth.date.len() != 8 {
        return Err(AuthError::Malformed(
            "Credential date does not match x-amz-date".to_owned(),
        ));
    }
    if let Some(token) = key.session_token()
        && header(req.headers, "x-amz-security-token") != Some(token)
    {
        return Err(AuthError::BadSessionToken);
    }
    Ok(HeadChecked {
        auth,
        amz_date: amz_date.to_owned(),
        key,
    })
}

/// Both steps at once, for a caller that has the body already.
pub fn verify<K: SigningKey>(
    req: &Request<'_>,
    body: &[u8],
    lookup: impl FnOnce(&str) -> Option<K>,
    region: RegionPolicy<'_>,
    now: OffsetDateTime,
) -> Result<K, AuthError> {
    check_head(req, lookup, region, now)?.check_body(req, body)
}

/// Recomputes the signature over the request and compares it with the one claimed.
pub fn check_signature(
    req: &Request<'_>,
    body: &[u8],
    auth: &Authorization,
    secret: &str,
    amz_date: &str,
) -> Result<(), AuthError> {
    let payload_hash = payload_hash(req, body)?;
    let canonical = canonical_request(req, &auth.signed_headers, &payload_hash);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = string_to_sign(amz_date, &scope, &canonical);
    let claimed = hex::decode(&auth.signature).map_err(|_| AuthError::SignatureMismatch)?;
    // HMAC accepts keys of any length, so the error arm is unreachable; mapping it keeps this total.
    let mut mac = signing_mac(secret, &auth.date, &auth.region, &auth.service)
        .map_err(|_| AuthError::SignatureMismatch)?;
    mac.update(to_sign.as_bytes());
    // `verify_slice` compares in constant time, so timing reveals nothing about the right signature.
    mac.verify_slice(&claimed)
        .map_err(|_| AuthError::SignatureMismatch)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn parse_amz_date(value: &str) -> Result<OffsetDateTime, AuthError> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, format)
        .map(|t| t.assume_utc())
        .map_err(|_| AuthError::Malformed(format!("bad x-amz-date {value}")))
}

fn payload_hash(req: &Request<'_>, body: &[u8]) -> Result<String, AuthError> {
    let actual = hex::encode(Sha256::digest(body));
    match header(req.headers, "x-amz-content-sha256") {
        None => Ok(actual),
        Some(UNSIGNED_PAYLOAD) => Ok(UNSIGNED_PAYLOAD.to_owned()),
        Some(sent) if sent == actual => Ok(actual),
        Some(_) => Err(AuthError::ContentHashMismatch),
    }
}

pub fn canonical_request(
    req: &Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let mut out = format!(
        "{}\n{}\n{}\n",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query)
    );
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| collapse_spaces(v))
            .collect();
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    out.push_str(&format!("\n{}\n{payload_hash}", signed_headers.join(";")));
    out
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// HMAC keyed with the derived signing key: AWS4+secret, then date, region, service, "aws4_request".
fn signing_mac(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> Result<HmacSha256, InvalidLength> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let mut mac = HmacSha256::new_from_slice(&key)?;
        mac.update(part.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    HmacSha256::new_from_slice(&key)
}

/// Removes `.` and `..` segments and empty segments, keeping a trailing slash, then URI-encodes
/// each segment (every byte but the unreserved ones).
fn canonical_uri(path: &[u8]) -> String {
    let mut segments: Vec<&[u8]> = Vec::new();
    let raw: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    for segment in &raw {
        match *segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = matches!(raw.last(), Some(&(b"" | b"." | b"..")));
    let mut out = String::from("/");
    let encoded: Vec<String> = segments.iter().map(|s| uri_encode(s)).collect();
    out.push_str(&encoded.join("/"));
    if trailing && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Decodes each parameter, re-encodes it strictly, and sorts by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
            (uri_encode(&decode(name)), uri_encode(&decode(value)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;

/// The test data copied into the repository (`tests/fixtures/`, with its licence notes).
#[cfg(test)]
fn fixtures_dir() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures"))
}
