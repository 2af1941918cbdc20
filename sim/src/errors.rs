//! Bedrock's modelled errors and how they look on the wire (restJson1: `{"message"}` plus
//! `x-amzn-errortype`), with the statuses taken from the Smithy model.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

/// Namespace Bedrock puts after the error name in `x-amzn-errortype`.
const BEDROCK_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";

/// Namespace of the front-door authentication errors, which come from Coral rather than Bedrock.
const CORAL_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Validation,
    AccessDenied,
    ResourceNotFound,
    ModelTimeout,
    Throttling,
    ModelError,
    InternalServer,
    ServiceUnavailable,
    UnknownOperation,
    MissingAuthenticationToken,
    InvalidSignature,
    UnrecognizedClient,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Validation => "ValidationException",
            Self::AccessDenied => "AccessDeniedException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::ModelTimeout => "ModelTimeoutException",
            Self::Throttling => "ThrottlingException",
            Self::ModelError => "ModelErrorException",
            Self::InternalServer => "InternalServerException",
            Self::ServiceUnavailable => "ServiceUnavailableException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::Validation => StatusCode::BAD_REQUEST,
            Self::AccessDenied
            | Self::MissingAuthenticationToken
            | Self::InvalidSignature
            | Self::UnrecognizedClient => StatusCode::FORBIDDEN,
            Self::ResourceNotFound | Self::UnknownOperation => StatusCode::NOT_FOUND,
            Self::ModelTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Throttling => StatusCode::TOO_MANY_REQUESTS,
            Self::ModelError => StatusCode::FAILED_DEPENDENCY,
            Self::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn namespace(self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken
            | Self::InvalidSignature
            | Self::UnrecognizedClient => CORAL_NAMESPACE,
            Self::Validation
            | Self::AccessDenied
            | Self::ResourceNotFound
            | Self::ModelTimeout
            | Self::Throttling
            | Self::ModelError
            | Self::InternalServer
            | Self::ServiceUnavailable
            | Self::UnknownOperation => BEDROCK_NAMESPACE,
        }
    }

    /// The exception a fault with this status stands for, as Bedrock would name it.
    pub fn for_status(status: u16) -> Self {
        match status {
            400 => Self::Validation,
            403 => Self::AccessDenied,
            404 => Self::ResourceNotFound,
            408 => Self::ModelTimeout,
            424 => Self::ModelError,
            429 => Self::Throttling,
            503 => Self::ServiceUnavailable,
            _ => Self::InternalServer,
        }
    }
}

/// An error answer: the status, the name the client decodes, and the human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    pub status: StatusCode,
    pub name: String,
    namespace: &'static str,
    pub message: String,
}

impl SimError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status: kind.status(),
            name: kind.name().to_owned(),
            namespace: kind.namespace(),
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// Bedrock's answer to a body its schema for the model refuses.
    pub fn malformed(detail: impl std::fmt::Display) -> Self {
        Self::validation(format!(
            "Malformed input request: {detail}, please reformat your input and try again."
        ))
    }

    /// Bedrock's answer when the model itself refuses the request, quoting the model's reason.
    pub fn model_refused(detail: impl std::fmt::Display) -> Self {
        Self::validation(format!("The model returned the following errors: {detail}"))
    }

    /// An injected error keeps the status asked for even when its name is overridden.
    pub fn injected(status: StatusCode, name: String, message: String) -> Self {
        Self {
            status,
            name,
            namespace: BEDROCK_NAMESPACE,
            message,
        }
    }

    pub fn response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((
                "x-amzn-errortype",
                format!("{}:{}", self.name, self.namespace),
            ))
            .json(serde_json::json!({ "message": self.message }))
    }
}
