//! The async-invoke calls that name a region rather than a model: GetAsyncInvoke goes to the
//! region its ARN names, ListAsyncInvokes asks every region of the routes and merges
//! ([`super::async_merge`]). Each region is served by the Bedrock Runtime targets the routes have
//! there, ready ones first, the next one tried when one cannot be reached or fails with a 5xx/429.

use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::header::CONTENT_TYPE;
use bytes::Bytes;
use futures_util::future::join_all;

use super::async_merge::{self, Cursor, MAX_RESULTS, RegionCursor, RegionPage};
use super::native::full_response;
use super::reply::{ATTEMPTS_HEADER, Reply};
use crate::backend::TargetRuntime;
use crate::balance::Lease;
use crate::clock;
use crate::error::GatewayError;
use crate::gateway::{Gateway, RouteRuntime};
use crate::limits::estimate::BodyTokens;
use crate::observe::Obs;
use crate::upstream::attempt::{error_answer, failed_attempt, send_once};
use crate::upstream::client::UpstreamClients;
use crate::upstream::forward::{Delivered, ProxyError, ProxyRequest, read_success_body};
use crate::upstream::operation::Operation;
use crate::upstream::request::Params;

pub struct Request<'a> {
    /// GetAsyncInvoke's `invocationArn`; `None` for ListAsyncInvokes.
    pub arn: Option<String>,
    /// The client's query, as received.
    pub query: &'a str,
    pub accept: String,
    pub max_body: usize,
}

pub(crate) async fn serve(
    gateway: &Gateway,
    clients: &UpstreamClients,
    request: Request<'_>,
    obs: &Rc<Obs>,
) -> Result<Reply, ProxyError> {
    match request.arn {
        Some(arn) => get(gateway, clients, arn, request.accept, request.max_body, obs).await,
        None => list(gateway, clients, &request, obs).await,
    }
}

async fn get(
    gateway: &Gateway,
    clients: &UpstreamClients,
    arn: String,
    accept: String,
    max_body: usize,
    obs: &Obs,
) -> Result<Reply, ProxyError> {
    let region = arn_region(&arn).ok_or_else(|| {
        GatewayError::bad_request(format!(
            "invocationArn {arn:?} is not an ARN (arn:aws:bedrock:REGION:ACCOUNT:async-invoke/ID)"
        ))
    })?;
    let region = region.to_owned();
    let request = upstream_request(
        Operation::GetAsyncInvoke,
        Params {
            invocation_arn: Some(arn),
            ..Params::default()
        },
        accept,
    );
    let (delivered, route) = send_to_region(gateway, clients, &region, &request, obs).await?;
    obs.set_route(&route.name);
    full_response(delivered, route.balancer_config.read_timeout, max_body, obs).await
}

async fn list(
    gateway: &Gateway,
    clients: &UpstreamClients,
    request: &Request<'_>,
    obs: &Obs,
) -> Result<Reply, ProxyError> {
    let query = ListQuery::parse(request.query)?;
    let cursor: Cursor = match &query.next_token {
        None => gateway
            .runtime_regions()
            .map(|r| (r.to_owned(), RegionCursor::default()))
            .collect(),
        Some(token) => async_merge::decode_cursor(token).ok_or_else(|| {
            GatewayError::bad_request("nextToken was not issued by this gateway's ListAsyncInvokes")
        })?,
    };
    let calls = cursor.into_iter().map(|(region, asked)| {
        let query = query.for_region(&asked);
        let request = upstream_request(
            Operation::ListAsyncInvokes,
            Params {
                query,
                ..Params::default()
            },
            request.accept.clone(),
        );
        async move {
            let (mut delivered, route) =
                send_to_region(gateway, clients, &region, &request, obs).await?;
            let body = read_success_body(
                &mut delivered,
                route.balancer_config.read_timeout,
                request_max(gateway),
                obs,
            )
            .await?;
            region_page(region, asked, &body, &delivered)
        }
    });
    let mut pages = Vec::new();
    for page in join_all(calls).await {
        pages.push(page?);
    }
    let attempts = pages.len();
    let merged = async_merge::merge(pages, query.max_results, query.ascending);
    let mut body = serde_json::json!({ "asyncInvokeSummaries": merged.summaries });
    if !merged.next.is_empty() {
        body["nextToken"] = async_merge::encode_cursor(&merged.next).into();
    }
    let response = HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((ATTEMPTS_HEADER, attempts.to_string()))
        .body(body.to_string());
    Ok(Reply::Full(response, None))
}

fn request_max(gateway: &Gateway) -> usize {
    gateway.config.server.max_response_body_size.get()
}

fn region_page(
    region: String,
    asked: RegionCursor,
    body: &[u8],
    delivered: &Delivered,
) -> Result<RegionPage, ProxyError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        #[serde(default)]
        async_invoke_summaries: Vec<serde_json::Value>,
        next_token: Option<String>,
    }
    let page: Page =
        serde_json::from_slice(body).map_err(|e| GatewayError::BadUpstreamResponse {
            target: delivered.lease.target().label.clone(),
            message: format!("ListAsyncInvokes answer: {e}"),
        })?;
    let skip = usize::try_from(asked.skip).unwrap_or(usize::MAX);
    Ok(RegionPage {
        region,
        asked,
        summaries: page.async_invoke_summaries.into_iter().skip(skip).collect(),
        next_token: page.next_token,
    })
}

fn upstream_request(operation: Operation, params: Params, accept: String) -> ProxyRequest {
    ProxyRequest {
        operation,
        params,
        tokens: BodyTokens::NONE,
        consumer_reservation: None,
        hash_key: None,
        pinned_model: None,
        session: None,
        body: Bytes::new(),
        content_type: String::new(),
        accept,
        per_target: None,
        abort: None,
    }
}

/// The region field of an ARN: `arn:PARTITION:SERVICE:REGION:...`.
fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    let region = (parts.next()? == "arn").then(|| parts.nth(2)).flatten()?;
    (!region.is_empty()).then_some(region)
}

/// Sends to the region's Bedrock Runtime targets, ready ones first, until one answers with
/// anything but a connection failure, a 5xx or a 429.
async fn send_to_region<'g>(
    gateway: &'g Gateway,
    clients: &UpstreamClients,
    region: &str,
    request: &ProxyRequest,
    obs: &Obs,
) -> Result<(Delivered, &'g RouteRuntime), ProxyError> {
    let now = clock::now_ms();
    let mut candidates: Vec<(&RouteRuntime, &Arc<TargetRuntime>)> =
        gateway.runtime_targets_in(region).collect();
    if candidates.is_empty() {
        return Err(GatewayError::bad_request(format!(
            "no route has a Bedrock Runtime target in region {region}, which {:?} needs",
            request.operation
        ))
        .into());
    }
    candidates.sort_by_key(|(_, t)| !t.state.is_ready(now));
    // Reads go to the region's ready targets in turn, at most `retries + 1` of them (the first
    // route's setting); with none ready, to the first alone, so a region is never left untried.
    let ready = candidates
        .iter()
        .filter(|(_, t)| t.state.is_ready(now))
        .count()
        .max(1);
    let max_attempts = usize::try_from(candidates[0].0.balancer_config.retries)
        .map_or(usize::MAX, |r| r.saturating_add(1));
    candidates.truncate(ready.min(max_attempts));
    let mut last: Option<ProxyError> = None;
    let mut previous: Option<Arc<TargetRuntime>> = None;
    for (attempt, (route, target)) in (1u32..).zip(candidates) {
        let client = clients.get(route.balancer_config.connect_timeout);
        obs.attempt(&route.name, target, attempt, previous.as_deref());
        previous = Some(Arc::clone(target));
        let mut lease = Lease::new(Arc::clone(target));
        let sent_at = std::time::Instant::now();
        match send_once(
            &client,
            target,
            request,
            request.operation,
            request.body.clone(),
            &route.balancer_config,
        )
        .await
        {
            Ok(response) if response.status().is_success() => {
                lease.mark_delivered();
                let delivered = Delivered {
                    lease,
                    response,
                    attempts: attempt,
                    sent_at,
                };
                return Ok((delivered, route));
            }
            Ok(mut response) => {
                let read_timeout = route.balancer_config.read_timeout;
                let error = error_answer(
                    &mut response,
                    &mut lease,
                    attempt,
                    sent_at,
                    read_timeout,
                    obs,
                )
                .await;
                let retry = match &error {
                    ProxyError::Upstream(e) => e.status.is_server_error() || e.status == 429,
                    // The region refused the gateway's credentials; another may take them.
                    ProxyError::Gateway(_) => true,
                };
                last = Some(error);
                if !retry {
                    break;
                }
            }
            Err(failure) => {
                failed_attempt(&failure, &mut lease, sent_at, obs);
                last = Some(
                    GatewayError::AllTargetsFailed {
                        route: format!("region {region}"),
                        last: failure.describe(),
                    }
                    .into(),
                );
            }
        }
    }
    Err(last.unwrap_or_else(|| GatewayError::Internal("no attempt was made".into()).into()))
}

/// ListAsyncInvokes' query: the gateway reads `maxResults`, `nextToken` and `sortOrder`, and
/// passes every other parameter to each region as sent.
struct ListQuery<'a> {
    /// Parameters passed on, still encoded.
    others: Vec<&'a str>,
    max_results: Option<u32>,
    next_token: Option<String>,
    ascending: bool,
}

impl<'a> ListQuery<'a> {
    fn parse(query: &'a str) -> Result<Self, GatewayError> {
        let mut parsed = Self {
            others: Vec::new(),
            max_results: None,
            next_token: None,
            ascending: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            match name {
                "maxResults" => {
                    let n = decoded
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=1000).contains(n));
                    let n = n.ok_or_else(|| {
                        GatewayError::bad_request("maxResults must be an integer from 1 to 1000")
                    })?;
                    parsed.max_results = Some(n.min(MAX_RESULTS));
                }
                "nextToken" => parsed.next_token = Some(decoded),
                _ => {
                    if name == "sortOrder" {
                        parsed.ascending = decoded == "Ascending";
                    }
                    parsed.others.push(pair);
                }
            }
        }
        Ok(parsed)
    }

    /// The query for one region: the client's filters, the region's own token, and enough
    /// results to cover what an earlier page already returned.
    fn for_region(&self, cursor: &RegionCursor) -> String {
        let mut parts: Vec<String> = self.others.iter().map(|p| (*p).to_owned()).collect();
        if let Some(max) = self.max_results {
            parts.push(format!("maxResults={}", max + cursor.skip));
        }
        if let Some(token) = &cursor.token {
            parts.push(format!(
                "nextToken={}",
                percent_encoding::utf8_percent_encode(token, crate::aws::sign::PATH_LABEL)
            ));
        }
        parts.join("&")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_region_comes_from_the_arn() {
        assert_eq!(
            arn_region("arn:aws:bedrock:eu-west-1:123456789012:async-invoke/abc"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("arn:aws:bedrock::1:x"), None);
        assert_eq!(arn_region("eu-west-1"), None);
    }

    #[test]
    fn list_queries_keep_filters_and_ask_each_region_for_its_page() {
        let q =
            ListQuery::parse("statusEquals=Completed&maxResults=2&sortOrder=Ascending").unwrap();
        assert!(q.ascending);
        let cursor = RegionCursor {
            token: Some("a/b+c".into()),
            skip: 1,
        };
        assert_eq!(
            q.for_region(&cursor),
            "statusEquals=Completed&sortOrder=Ascending&maxResults=3&nextToken=a%2Fb%2Bc"
        );
        assert!(ListQuery::parse("maxResults=0").is_err());
        assert_eq!(
            ListQuery::parse("maxResults=1000").unwrap().max_results,
            Some(MAX_RESULTS)
        );
    }
}
