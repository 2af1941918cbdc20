//! Consumer authentication: who is calling, decided from the request head where the credentials
//! allow, and from the body only where a SigV4 signature covers it.
//!
//! With no `consumers` configured every request passes as an anonymous [`Caller`]. Otherwise a
//! request authenticates with an API key (`Authorization: Bearer`, or `x-api-key` when there is no
//! `Authorization`), compared as a SHA-256 digest against every consumer's in constant time, or
//! with a SigV4 signature by a consumer's key pair (service `bedrock`, any region).
//!
//! [`Authenticator::check_head`] runs before the body is read and returns a [`PendingAuth`];
//! only [`PendingAuth::verify`] turns that into a [`Caller`], so a handler cannot use a caller
//! whose signature was never checked. Every refusal is counted and logged here, once, without
//! the key, the secret or the `Authorization` header.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use time::OffsetDateTime;

use crate::config::{Consumer, key_digest};
use crate::error::{AuthReason, GatewayError};
use sigv4_verify::{self as sigv4, AuthError, HeadChecked, RegionPolicy, SigningKey};

const API_KEY_HEADER: &str = "x-api-key";
const BEARER: &str = "bearer ";

/// What a failed SigV4 check tells the client (and the metric).
fn reason_of_sigv4(error: &AuthError) -> AuthReason {
    match error {
        AuthError::Missing => AuthReason::Missing,
        AuthError::Malformed(_) | AuthError::WrongRegion(_) | AuthError::WrongService(_) => {
            AuthReason::Malformed
        }
        AuthError::UnknownKey => AuthReason::UnknownAccessKey,
        AuthError::Expired(_) => AuthReason::Expired,
        AuthError::BadSessionToken
        | AuthError::ContentHashMismatch
        | AuthError::SignatureMismatch => AuthReason::BadSignature,
    }
}

/// The authenticated client of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    consumer: Option<Arc<str>>,
}

impl Caller {
    /// The consumer's configured name; `None` when no consumers are configured.
    pub fn consumer(&self) -> Option<&Arc<str>> {
        self.consumer.as_ref()
    }
}

struct ApiKey {
    digest: [u8; 32],
    consumer: Arc<str>,
}

/// A consumer's SigV4 key pair. Deliberately not `Debug`: it holds the secret.
struct KeyPair {
    consumer: Arc<str>,
    secret_access_key: String,
    session_token: Option<String>,
}

impl SigningKey for &KeyPair {
    fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
}

/// The consumers' credentials, built with each config so a reload swaps keys with the gateway.
#[derive(Default)]
pub struct Authenticator {
    required: bool,
    api_keys: Vec<ApiKey>,
    key_pairs: HashMap<String, KeyPair>,
}

/// A request whose head passed; [`PendingAuth::verify`] finishes the check once the body is in.
#[must_use = "a request is authenticated only by PendingAuth::verify"]
pub struct PendingAuth<'a> {
    step: Step<'a>,
}

enum Step<'a> {
    /// The head decided: an API key, or no consumers configured.
    Decided(Caller),
    /// A SigV4 head that passed; its signature covers the body. Boxed: it is the rare, large case.
    Signature(Box<Signed<'a>>),
}

struct Signed<'a> {
    head: SignedHead,
    checked: HeadChecked<&'a KeyPair>,
}

/// The head a signature covers, copied so the checked head can wait for the body.
struct SignedHead {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
}

impl SignedHead {
    fn of(req: &HttpRequest) -> Self {
        Self {
            method: req.method().as_str().to_owned(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().unwrap_or("").to_owned(),
            headers: sigv4::header_list(req.headers()),
        }
    }

    fn request(&self) -> sigv4::Request<'_> {
        sigv4::Request {
            method: &self.method,
            path: self.path.as_bytes(),
            query: &self.query,
            headers: &self.headers,
        }
    }
}

impl Authenticator {
    pub fn new(consumers: &[Consumer]) -> Self {
        let mut auth = Self {
            required: !consumers.is_empty(),
            ..Self::default()
        };
        for consumer in consumers {
            let name: Arc<str> = Arc::from(consumer.name.as_str());
            if let Some(digest) = consumer.api_key_sha256 {
                auth.api_keys.push(ApiKey {
                    digest,
                    consumer: Arc::clone(&name),
                });
            }
            if let Some(aws) = &consumer.aws {
                auth.key_pairs.insert(
                    aws.access_key_id.clone(),
                    KeyPair {
                        consumer: Arc::clone(&name),
                        secret_access_key: aws.secret_access_key.clone(),
                        session_token: aws.session_token.clone(),
                    },
                );
            }
        }
        auth
    }

    /// Everything the head decides, before the body is read.
    pub fn check_head(&self, req: &HttpRequest) -> Result<PendingAuth<'_>, GatewayError> {
        self.check_head_at(req, OffsetDateTime::now_utc())
    }

    fn check_head_at(
        &self,
        req: &HttpRequest,
        now: OffsetDateTime,
    ) -> Result<PendingAuth<'_>, GatewayError> {
        if !self.required {
            return Ok(PendingAuth::decided(None));
        }
        let headers = req.headers();
        let Some(authorization) = headers.get(AUTHORIZATION) else {
            return match headers.get(API_KEY_HEADER) {
                Some(key) => self.api_key(key.as_bytes()),
                None => Err(refuse(AuthReason::Missing, None)),
            };
        };
        let authorization = authorization
            .to_str()
            .map_err(|_| refuse(AuthReason::Malformed, None))?;
        if sigv4::is_sigv4(authorization) {
            return self.signature_head(req, now);
        }
        match bearer_token(authorization) {
            Some(key) => self.api_key(key.as_bytes()),
            None => Err(refuse(AuthReason::Malformed, None)),
        }
    }

    fn api_key(&self, key: &[u8]) -> Result<PendingAuth<'_>, GatewayError> {
        match self.consumer_for_key(key) {
            Some(consumer) => Ok(PendingAuth::decided(Some(Arc::clone(consumer)))),
            None => Err(refuse(AuthReason::InvalidKey, None)),
        }
    }

    /// Compares the key's digest with every consumer's, without stopping at a match, so the time
    /// taken says neither whether nor which consumer matched.
    fn consumer_for_key(&self, key: &[u8]) -> Option<&Arc<str>> {
        let digest = key_digest(key);
        let mut matched = Choice::from(0);
        let mut index = 0u64;
        for (i, entry) in self.api_keys.iter().enumerate() {
            let same = entry.digest[..].ct_eq(&digest[..]);
            index.conditional_assign(&(i as u64), same);
            matched |= same;
        }
        if !bool::from(matched) {
            return None;
        }
        let index = usize::try_from(index).ok()?;
        self.api_keys.get(index).map(|k| &k.consumer)
    }

    fn signature_head(
        &self,
        req: &HttpRequest,
        now: OffsetDateTime,
    ) -> Result<PendingAuth<'_>, GatewayError> {
        let head = SignedHead::of(req);
        let mut claimed = None;
        let lookup = |id: &str| {
            claimed = self.key_pairs.get(id);
            claimed
        };
        match sigv4::check_head(&head.request(), lookup, RegionPolicy::Any, now) {
            Ok(checked) => Ok(PendingAuth {
                step: Step::Signature(Box::new(Signed { head, checked })),
            }),
            Err(e) => Err(refuse(reason_of_sigv4(&e), claimed.map(|k| &k.consumer))),
        }
    }
}

impl PendingAuth<'_> {
    fn decided(consumer: Option<Arc<str>>) -> Self {
        Self {
            step: Step::Decided(Caller { consumer }),
        }
    }

    /// Checks a signature against the body (a no-op for API keys); call it before anything else
    /// is done with the request.
    pub fn verify(self, body: &[u8]) -> Result<Caller, GatewayError> {
        match self.step {
            Step::Decided(caller) => Ok(caller),
            Step::Signature(signed) => {
                let Signed { head, checked } = *signed;
                let consumer = Arc::clone(&checked.claimed_key().consumer);
                match checked.check_body(&head.request(), body) {
                    Ok(_) => Ok(Caller {
                        consumer: Some(consumer),
                    }),
                    Err(e) => Err(refuse(reason_of_sigv4(&e), Some(&consumer))),
                }
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme in any case).
fn bearer_token(authorization: &str) -> Option<&str> {
    let scheme = authorization.get(..BEARER.len())?;
    scheme
        .eq_ignore_ascii_case(BEARER)
        .then(|| authorization[BEARER.len()..].trim())
}

/// Whether the request's `Authorization: Bearer` token has the digest `expected` (the admin
/// token), compared in constant time as consumer keys are.
pub fn bearer_matches(req: &HttpRequest, expected: &[u8; 32]) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .is_some_and(|token| bool::from(key_digest(token.as_bytes())[..].ct_eq(&expected[..])))
}

/// Counts and logs a refusal. Only the reason and, when the access key id named one, the
/// consumer are logged: never the key, the secret or the header.
fn refuse(reason: AuthReason, consumer: Option<&Arc<str>>) -> GatewayError {
    crate::metrics::auth_failure(reason);
    tracing::warn!(
        reason = reason.label(),
        consumer = consumer.map_or("unknown", |c| &**c),
        "authentication failed"
    );
    GatewayError::Unauthorized(reason)
}

#[cfg(test)]
mod tests;
