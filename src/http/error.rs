//! The native API's error responses: `{"detail": …}` with the right status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{FieldError, FieldErrors};
use crate::services::{Conflict, ServiceError};

/// `{"detail": "message"}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// One failing field of a 422 answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationItem {
    /// Where the field is: `["body", "email"]`, `["query", "limit"]`, `["path", "id"]`.
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `{"detail": [{"loc": …, "msg": …, "type": …}, …]}`, listing every failing field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationBody {
    pub detail: Vec<ValidationItem>,
}

#[derive(Debug)]
pub enum ApiError {
    Service(ServiceError),
    /// Field errors whose `loc` already starts with `body`, `query` or `path`.
    Invalid(Vec<FieldError>),
    MalformedJson(String),
    UnsupportedMediaType(&'static str),
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    Timeout,
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        Self::Service(err)
    }
}

impl ApiError {
    /// Field errors from parsing a request body.
    pub fn body(errors: FieldErrors) -> Self {
        Self::Invalid(prefixed("body", errors))
    }

    /// Field errors from checking query parameters.
    pub fn query(errors: FieldErrors) -> Self {
        Self::Invalid(prefixed("query", errors))
    }
}

fn prefixed(place: &str, errors: FieldErrors) -> Vec<FieldError> {
    errors
        .0
        .into_iter()
        .map(|mut e| {
            e.loc.insert(0, place.to_owned());
            e
        })
        .collect()
}

fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            detail: message.into(),
        }),
    )
        .into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response = detail(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn invalid(errors: Vec<FieldError>) -> Response {
    let body = ValidationBody {
        detail: errors
            .into_iter()
            .map(|e| ValidationItem {
                loc: e.loc,
                msg: e.msg,
                kind: e.kind.to_owned(),
            })
            .collect(),
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// Logs, with its whole cause chain, an error the client only sees as a plain 500.
pub(crate) fn log_internal(err: &anyhow::Error) {
    tracing::error!(error = format!("{err:#}"), "internal error");
}

pub(crate) fn log_unavailable(err: &dyn std::error::Error) {
    tracing::warn!(error = %err, "database unavailable");
}

pub(crate) fn internal(err: &anyhow::Error) -> Response {
    log_internal(err);
    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

fn unavailable(err: &dyn std::error::Error) -> Response {
    log_unavailable(err);
    let mut response = detail(StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Service(err) => match err {
                ServiceError::Validation(errors) => invalid(prefixed("body", errors)),
                ServiceError::NotFound(what) => detail(StatusCode::NOT_FOUND, format!("{what} not found")),
                ServiceError::Duplicate(Conflict::Email) => {
                    detail(StatusCode::CONFLICT, "A user with this email already exists")
                }
                ServiceError::Duplicate(Conflict::Username) => {
                    detail(StatusCode::CONFLICT, "A user with this username already exists")
                }
                ServiceError::Duplicate(Conflict::Name(what)) => detail(
                    StatusCode::CONFLICT,
                    format!("A {what} with this name already exists"),
                ),
                ServiceError::NameTaken => detail(StatusCode::CONFLICT, "The value is already taken"),
                ServiceError::NotFoundId(what, id) => {
                    detail(StatusCode::NOT_FOUND, format!("{what} {id} not found"))
                }
                ServiceError::Conflict(message) => detail(StatusCode::CONFLICT, message),
                ServiceError::Forbidden(message) => detail(StatusCode::FORBIDDEN, message),
                ServiceError::BadRequest(message) => detail(StatusCode::BAD_REQUEST, message),
                ServiceError::InvalidCredentials => unauthorized("Incorrect username or password"),
                ServiceError::InactiveUser => detail(StatusCode::FORBIDDEN, "Inactive user"),
                ServiceError::Throttled(secs) => {
                    let mut response = detail(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("Too many failed login attempts; try again in {secs} seconds"),
                    );
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                    response
                }
                ServiceError::Unauthenticated(message) => unauthorized(message),
                ServiceError::Unavailable(err) => unavailable(&err),
                ServiceError::Internal(err) => internal(&err),
            },
            Self::Invalid(errors) => invalid(errors),
            Self::MalformedJson(message) => detail(StatusCode::BAD_REQUEST, message),
            Self::UnsupportedMediaType(expected) => detail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be {expected}"),
            ),
            Self::PayloadTooLarge => detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large"),
            Self::NotFound => detail(StatusCode::NOT_FOUND, "Not Found"),
            Self::MethodNotAllowed => detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            Self::Timeout => detail(StatusCode::SERVICE_UNAVAILABLE, "Request timed out"),
        }
    }
}
