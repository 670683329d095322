//! Extractors whose failures speak the contract's error shape instead of axum's plain text.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::domain::FieldError;
use crate::services::accounts::{self, ClientInfo};
use crate::services::{Caller, ServiceError};

/// A JSON request body. Wrong content type → 415, too large → 413, malformed → 400, wrong
/// types → 422 naming the field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::MalformedJson("Could not read the request body".into())
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers)
        .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")))
}

pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m == "application/x-www-form-urlencoded")
}

/// Parses JSON, reporting where a value has the wrong type.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Invalid(vec![FieldError::missing().at("body")]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end()
                .map_err(|e| ApiError::MalformedJson(format!("Malformed JSON body: {e}")))?;
            Ok(value)
        }
        Err(err) => {
            let loc = path_segments(err.path());
            let inner = err.into_inner();
            if inner.is_data() {
                Err(ApiError::Invalid(vec![located(
                    &["body"],
                    loc,
                    strip_position(&inner.to_string()),
                    "type_error",
                )]))
            } else {
                Err(ApiError::MalformedJson(format!("Malformed JSON body: {inner}")))
            }
        }
    }
}

/// A query string, parsed with field-level errors located at `["query", name]`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        parse_urlencoded(query.as_bytes(), "query").map(Query)
    }
}

/// Parses `a=1&b=2` (a query string or a form body).
pub(crate) fn parse_urlencoded<T: DeserializeOwned>(bytes: &[u8], place: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let loc = path_segments(err.path());
        let message = err.into_inner().to_string();
        ApiError::Invalid(vec![located(&[place], loc, message, "type_error")])
    })
}

/// Path parameters; a value of the wrong type (e.g. `/users/abc`) is a 422 at `["path", name]`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                use axum::extract::path::ErrorKind;
                let key = match err.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => {
                        key.clone()
                    }
                    _ => "id".to_owned(),
                };
                Err(ApiError::Invalid(vec![
                    FieldError::new("Input should be a valid integer", "int_parsing")
                        .at(&key)
                        .at("path"),
                ]))
            }
            Err(_) => Err(ApiError::NotFound),
        }
    }
}

/// The authenticated caller. Missing or bad credentials answer 401 before the handler runs.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Caller);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(AuthUser(caller.clone()));
        }
        let token = bearer_token(&parts.headers).ok_or(ApiError::Service(ServiceError::Unauthenticated(
            "Not authenticated",
        )))?;
        let caller = accounts::authenticate(&state.core, token).await?;
        tracing::Span::current().record("user_id", caller.id());
        parts.extensions.insert(caller.clone());
        Ok(AuthUser(caller))
    }
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The client's user agent and address, remembered with a session and counted by the login
/// throttle.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let address = client_ip(&parts.extensions, &parts.headers, &state.limits.trusted_proxies)
            .map(|ip| ip.to_string());
        Ok(Client(ClientInfo { user_agent, address }))
    }
}

/// The address a request came from: the socket's peer, unless that peer is one of the
/// `trusted` proxies, in which case the nearest `X-Forwarded-For` entry that is not a trusted
/// proxy. A client cannot pick its own address by sending the header directly.
pub fn client_ip(
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

fn located(place: &[&str], path: Vec<String>, msg: String, kind: &'static str) -> FieldError {
    let mut error = FieldError::new(msg, kind);
    error.loc = place.iter().map(|s| (*s).to_owned()).chain(path).collect();
    error
}

/// serde_json appends "at line 1 column 17"; the location is already in `loc`.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_owned(),
        None => message.to_owned(),
    }
}
