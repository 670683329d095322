//! The Flask generation's error bodies: `{"error": …}`, `{"error": …, "message": …}`, and
//! marshmallow-style `{"error": "Validation Error", "messages": {field: [message]}}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::http::error::{ApiError, log_internal, log_unavailable};
use crate::services::{Conflict, ServiceError};

/// `{"error": …}` or `{"error": …, "message": …}`
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `{"error": "Validation Error", "messages": {"email": ["Not a valid email address."]}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatValidationBody {
    pub error: String,
    pub messages: BTreeMap<String, Vec<String>>,
}

/// What a compat 400 may look like: a marshmallow-style validation error
/// (`{"error": "Validation Error", "messages": {…}}`) or a plain `{"error": …}` such as
/// `Username already exists` (with a `message` for other bad requests). Documentation only: the
/// bodies themselves are [`CompatValidationBody`] and [`CompatErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct CompatBadRequestBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Present for validation errors: messages by field name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug)]
pub struct CompatError(pub ApiError);

impl From<ApiError> for CompatError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl From<ServiceError> for CompatError {
    fn from(err: ServiceError) -> Self {
        Self(ApiError::Service(err))
    }
}

fn error(status: StatusCode, error: &str, message: Option<&str>) -> Response {
    let body = CompatErrorBody {
        error: error.to_owned(),
        message: message.map(str::to_owned),
    };
    (status, Json(body)).into_response()
}

pub fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Not Found",
        Some("The requested resource was not found"),
    )
}

pub fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        Some("The method is not allowed for the requested URL."),
    )
}

/// Field errors keyed by field name, worded like marshmallow's.
fn validation(errors: &[FieldError]) -> Response {
    let mut messages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in errors {
        // Drop the `body`/`query`/`path` prefix: marshmallow keys by field name only.
        let field = e.loc.iter().skip(1).cloned().collect::<Vec<_>>().join(".");
        let field = if field.is_empty() {
            "_schema".to_owned()
        } else {
            field
        };
        messages
            .entry(field.clone())
            .or_default()
            .push(marshmallow_wording(&field, e));
    }
    let body = CompatValidationBody {
        error: "Validation Error".into(),
        messages,
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn marshmallow_wording(field: &str, e: &FieldError) -> String {
    let number = || {
        e.msg
            .split_whitespace()
            .find_map(|w| w.parse::<u32>().ok())
            .unwrap_or_default()
    };
    match e.kind {
        "missing" if field == "_schema" => "Invalid input type.".into(),
        "missing" => "Missing data for required field.".into(),
        "type_error" => "Not a valid string.".into(),
        "string_too_short" => format!("Shorter than minimum length {}.", number()),
        "string_too_long" => format!("Longer than maximum length {}.", number()),
        _ if field == "email" => "Not a valid email address.".into(),
        _ if e.msg.ends_with('.') => e.msg.clone(),
        _ => format!("{}.", e.msg),
    }
}

impl IntoResponse for CompatError {
    fn into_response(self) -> Response {
        match self.0 {
            ApiError::Service(err) => match err {
                ServiceError::Validation(errors) => {
                    let errors: Vec<FieldError> = errors.0.into_iter().map(|e| e.at("body")).collect();
                    validation(&errors)
                }
                ServiceError::Duplicate(Conflict::Username) => {
                    error(StatusCode::BAD_REQUEST, "Username already exists", None)
                }
                ServiceError::Duplicate(Conflict::Email) => {
                    error(StatusCode::BAD_REQUEST, "Email already exists", None)
                }
                ServiceError::Duplicate(Conflict::Name(_)) | ServiceError::NameTaken => {
                    error(StatusCode::BAD_REQUEST, "Already exists", None)
                }
                ServiceError::NotFound(_) | ServiceError::NotFoundId(..) => not_found(),
                ServiceError::InvalidCredentials => {
                    error(StatusCode::UNAUTHORIZED, "Invalid credentials", None)
                }
                ServiceError::InactiveUser => error(StatusCode::FORBIDDEN, "Inactive user", None),
                ServiceError::Throttled(secs) => {
                    let message = format!("Too many failed login attempts; try again in {secs} seconds");
                    let mut response =
                        error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", Some(&message));
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                    response
                }
                ServiceError::Unauthenticated(message) => {
                    error(StatusCode::UNAUTHORIZED, "Unauthorized", Some(message))
                }
                ServiceError::Forbidden(message) => error(StatusCode::FORBIDDEN, "Forbidden", Some(&message)),
                ServiceError::Conflict(message) => error(StatusCode::CONFLICT, "Conflict", Some(message)),
                ServiceError::BadRequest(message) => {
                    error(StatusCode::BAD_REQUEST, "Bad Request", Some(message))
                }
                ServiceError::Unavailable(err) => {
                    log_unavailable(&err);
                    let mut response = error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable",
                        Some("Service temporarily unavailable"),
                    );
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    response
                }
                ServiceError::Internal(err) => {
                    log_internal(&err);
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                        Some("Something went wrong on the server"),
                    )
                }
            },
            ApiError::Invalid(errors) => {
                if errors.iter().any(|e| e.loc.first().is_some_and(|p| p == "path")) {
                    // Flask's `<int:id>` converter answers 404 for a non-numeric id.
                    return not_found();
                }
                validation(&errors)
            }
            ApiError::MalformedJson(_) => validation(&[FieldError::missing().at("body")]),
            ApiError::UnsupportedMediaType(expected) => error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
                Some(&format!("Content-Type must be {expected}")),
            ),
            ApiError::PayloadTooLarge => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large",
                Some("The data value transmitted exceeds the capacity limit."),
            ),
            ApiError::NotFound => not_found(),
            ApiError::MethodNotAllowed => method_not_allowed(),
            ApiError::Timeout => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                Some("Request timed out"),
            ),
        }
    }
}
