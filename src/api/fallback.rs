//! Any path the gateway does not serve: a JSON 404 rather than an empty body.

use actix_web::{HttpRequest, HttpResponse};

use crate::error::{ApiFormat, GatewayError};

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let format = if req.path().starts_with("/v1/") {
        ApiFormat::OpenAi
    } else {
        ApiFormat::Bedrock
    };
    GatewayError::PathNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }
    .respond(format)
}
