//! A request's admission against rate limits before it is forwarded: what its body may cost in
//! tokens, and the consumer's own quota. Target limits are checked later, per candidate, by
//! the balancer loop (`upstream::forward`).

use std::num::NonZeroU32;
use std::sync::Arc;

use crate::config::RouteType;
use crate::error::{GatewayError, LimitScope};
use crate::gateway::{Gateway, RouteRuntime};
use crate::limits::estimate::{self, BodyTokens, DEFAULT_MAX_TOKENS};
use crate::limits::{self, Meter, Reservation};

/// The limits a request of `consumer` on `route` must pass.
pub struct Quota {
    consumer: Option<Arc<Meter>>,
    /// Some limit counts tokens, so bodies need an estimate.
    counts_tokens: bool,
    /// Output allowance when the client sets no cap: the route's largest target default.
    default_max: u32,
    /// Embedding models produce no output tokens.
    embeddings: bool,
}

impl Quota {
    pub fn for_request(
        gateway: &Gateway,
        route: &RouteRuntime,
        consumer: Option<&Arc<str>>,
    ) -> Self {
        let consumer = consumer.and_then(|name| gateway.consumer_limits.meter(name));
        let counts_tokens =
            route.token_limited || consumer.as_ref().is_some_and(|m| m.token_cap().is_some());
        // Only a token limit needs the output allowance; skip the roster walk otherwise.
        let default_max = if counts_tokens {
            route
                .balancer
                .roster()
                .targets
                .iter()
                .filter_map(|t| t.config.max_tokens.map(NonZeroU32::get))
                .max()
                .unwrap_or(DEFAULT_MAX_TOKENS)
        } else {
            DEFAULT_MAX_TOKENS
        };
        Self {
            consumer,
            counts_tokens,
            default_max,
            embeddings: route.route_type == RouteType::Embeddings,
        }
    }

    /// The consumer's limits alone, for a request that no route serves and that generates nothing
    /// (GetAsyncInvoke, ListAsyncInvokes): it costs the consumer one request.
    pub fn consumer_only(gateway: &Gateway, consumer: Option<&Arc<str>>) -> Self {
        Self {
            consumer: consumer.and_then(|name| gateway.consumer_limits.meter(name)),
            counts_tokens: false,
            default_max: DEFAULT_MAX_TOKENS,
            embeddings: false,
        }
    }

    /// What an upstream body may cost; all zero when no limit counts tokens (the estimate parses
    /// the body, which a request without token limits should not pay for).
    pub fn tokens(&self, upstream_body: &[u8]) -> BodyTokens {
        if !self.counts_tokens {
            return BodyTokens::default();
        }
        let mut tokens = estimate::estimate(upstream_body);
        if self.embeddings {
            tokens.max_output = Some(0);
        }
        tokens
    }

    /// Takes the consumer's request cells (one per upstream call) and token reservation for the
    /// whole client request (`tokens`: one per upstream call it makes), or refuses it with a 429
    /// or, when it can never fit, a 400.
    pub async fn admit_consumer(
        &self,
        tokens: impl IntoIterator<Item = BodyTokens>,
    ) -> Result<Option<Arc<Reservation>>, GatewayError> {
        let Some(meter) = &self.consumer else {
            return Ok(None);
        };
        let (calls, wanted) = tokens.into_iter().fold((0u32, 0u32), |(calls, wanted), t| {
            (
                calls.saturating_add(1),
                wanted.saturating_add(t.reservation(self.default_max)),
            )
        });
        meter
            .admit(calls, wanted)
            .await
            .map(|reservation| Some(Arc::new(reservation)))
            .map_err(|refusal| limits::refused(LimitScope::Consumer, refusal))
    }
}
