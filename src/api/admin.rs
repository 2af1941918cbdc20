//! The admin port: probes for the load balancer and orchestrator, metrics, and `/admin/*` (the
//! live target view and reload), which `server.admin_token` guards when set.

use std::num::NonZeroU32;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use super::state::AppState;
use crate::backend::{Health, TargetRuntime};
use crate::clock;
use crate::config::TokensCountStrategy;
use crate::error::{ApiFormat, GatewayError};
use crate::metrics::{LimitRow, TargetRow};

/// Lets `/admin/*` through only with the admin token, when one is configured. The token comes
/// from the live config, so a reload rotates it. Probes and metrics are not behind this: an
/// orchestrator and a scraper must reach them without a secret.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let expected = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.gateway().config.server.admin_token_sha256);
    match expected {
        Some(digest) if !crate::auth::bearer_matches(req.request(), &digest) => {
            tracing::warn!(
                path = req.path(),
                "admin request refused: missing or wrong admin token"
            );
            let response = GatewayError::AdminUnauthorized.respond(ApiFormat::Bedrock);
            Ok(req.into_response(response))
        }
        _ => next.call(req).await,
    }
}

/// Alive: the process answers. Deliberately checks nothing else, so a restart is never triggered
/// by an upstream outage.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: not draining, and some target could take a request now.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_draining() {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "draining"}));
    }
    if state.gateway().any_target_ready(clock::now_ms()) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "no target ready"}))
    }
}

#[derive(Serialize)]
struct TargetView<'a> {
    route: &'a str,
    target: &'a str,
    provider: &'static str,
    region: &'a str,
    model: &'a str,
    weight: u16,
    state: &'static str,
    ready: bool,
    /// While the circuit is open: time until a half-open trial may go; 0 otherwise.
    open_remaining_ms: u64,
    cooldown_remaining_ms: u64,
    credentials_loaded: bool,
    in_flight: u32,
    ewma_latency_ms: f64,
    ewma_ttft_ms: f64,
    ewma_tpot_ms: f64,
    avg_prompt_tokens: f64,
    avg_completion_tokens: f64,
    avg_cost: f64,
    requests: u64,
    failures: u64,
    /// `rpm` / `tpm` as configured and what is left of them now; absent without limits.
    limits: Option<LimitView>,
}

#[derive(Serialize)]
struct LimitView {
    rpm: Option<u32>,
    tpm: Option<u32>,
    remaining_rpm: Option<u32>,
    remaining_tpm: Option<u32>,
}

async fn limit_view(target: &TargetRuntime) -> Option<LimitView> {
    let meter = target.quota()?;
    let limits = meter.limits();
    let remaining = meter.remaining().await;
    Some(LimitView {
        rpm: limits.rpm.map(NonZeroU32::get),
        tpm: limits.tpm.map(NonZeroU32::get),
        remaining_rpm: remaining.rpm,
        remaining_tpm: remaining.tpm,
    })
}

pub async fn targets(state: web::Data<AppState>) -> HttpResponse {
    let gateway = state.gateway();
    let now = clock::now_ms();
    let rosters: Vec<_> = gateway
        .routes()
        .iter()
        .map(|r| (r.name.as_str(), r.balancer.roster()))
        .collect();
    let mut views: Vec<TargetView<'_>> = Vec::new();
    for (route, roster) in &rosters {
        for t in &roster.targets {
            views.push(TargetView {
                route,
                target: &t.label,
                provider: t.config.provider.provider().as_str(),
                region: &t.config.region,
                model: t.config.resource(),
                weight: t.config.weight.get(),
                state: t.state.health().as_str(),
                ready: t.state.is_ready(now),
                open_remaining_ms: match t.state.health() {
                    Health::Open => t.state.open_until_ms().saturating_sub(now),
                    Health::Closed | Health::HalfOpen => 0,
                },
                cooldown_remaining_ms: t.state.cooldown_until_ms().saturating_sub(now),
                credentials_loaded: t.state.can_authenticate(),
                in_flight: t.state.in_flight(),
                ewma_latency_ms: t.state.ewma_latency_ms(),
                ewma_ttft_ms: t.state.ewma_ttft_ms(),
                ewma_tpot_ms: t.state.ewma_tpot_ms(),
                avg_prompt_tokens: t.state.usage(TokensCountStrategy::PromptTokens),
                avg_completion_tokens: t.state.usage(TokensCountStrategy::CompletionTokens),
                avg_cost: t.state.usage(TokensCountStrategy::Cost),
                requests: t.state.requests(),
                failures: t.state.failures(),
                limits: limit_view(t).await,
            });
        }
    }
    HttpResponse::Ok().json(json!({ "targets": views, "rate_limits": gateway.backend.status() }))
}

/// `POST /admin/reload`: re-reads the config; 200 with the route count, or 422 listing every
/// problem while the running config keeps serving.
pub async fn reload(state: web::Data<AppState>) -> HttpResponse {
    let result = state.reload();
    super::state::log_reload(result.clone(), "admin");
    match result {
        Ok(routes) => HttpResponse::Ok().json(json!({"status": "reloaded", "routes": routes})),
        Err(errors) => HttpResponse::UnprocessableEntity()
            .json(json!({"status": "rejected", "errors": errors})),
    }
}

/// `GET /metrics`: Prometheus text format; target gauges are read from live state at scrape time.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let gateway = state.gateway();
    let rosters: Vec<_> = gateway
        .routes()
        .iter()
        .map(|route| (route.name.as_str(), route.balancer.roster()))
        .collect();
    let mut remaining = Vec::new();
    for (_, roster) in &rosters {
        for t in &roster.targets {
            if let Some(meter) = t.quota() {
                remaining.push((t.label.as_str(), meter.remaining().await));
            }
        }
    }
    let limits: Vec<LimitRow<'_>> = remaining
        .iter()
        .map(|(target, left)| LimitRow {
            target,
            rpm: left.rpm,
            tpm: left.tpm,
        })
        .collect();
    let now = clock::now_ms();
    let targets: Vec<TargetRow<'_>> = rosters
        .iter()
        .flat_map(|(route, roster)| roster.targets.iter().map(move |t| (*route, t)))
        .map(|(route, t)| TargetRow {
            route,
            target: &t.label,
            provider: t.metric_labels().provider,
            region: &t.config.region,
            model: t.config.resource(),
            health: t.state.health() as u8,
            cooling_down: t.state.cooldown_until_ms() > now,
            in_flight: t.state.in_flight(),
            ewma_latency_secs: t.state.ewma_latency_ms() / 1000.0,
        })
        .collect();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&targets, &limits))
}
