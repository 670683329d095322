//! The HTTP edge: routing, middleware, extractors and error mapping. Handlers extract, call a
//! service and map the result; they decide nothing.

#[cfg(feature = "bench")]
mod bench;
pub mod compat;
pub mod error;
pub mod extract;
mod headers;
pub mod metrics;
pub mod native;
mod openapi;
mod shield;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::domain::SecretString;
use crate::services::Core;
use crate::shutdown::Shutdown;
use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Shared, not copied: axum clones the state for every extractor that asks for it.
    pub core: Arc<Core>,
    limits: Arc<Limits>,
    ops: Arc<Ops>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins allowed by CORS (none: no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// Requests per second and burst per client on the credential routes; 0 turns it off.
    pub auth_rate_per_second: u32,
    pub auth_rate_burst: u32,
}

/// What the operational endpoints need: the metrics token and the shutdown switch.
#[derive(Debug, Clone, Default)]
pub struct Ops {
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
    /// Once begun, `/readyz` answers 503.
    pub shutdown: Shutdown,
}

impl AppState {
    pub fn new(core: Core, limits: Limits, ops: Ops) -> Self {
        Self {
            core: Arc::new(core),
            limits: Arc::new(limits),
            ops: Arc::new(ops),
        }
    }

    pub fn shutdown(&self) -> &Shutdown {
        &self.ops.shutdown
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: both API surfaces, documentation and middleware.
pub fn app(state: AppState) -> Router {
    let limits = state.limits.clone();
    let request_timeout = limits.request_timeout;
    let (router, api) = api_routes(Some(&limits)).split_for_parts();
    let api = openapi::finish(api);
    // Benchmark-only routes exist only in builds with the `bench` feature (see `bench.rs`).
    #[cfg(feature = "bench")]
    let router = router.merge(bench::router());
    router
        .merge(openapi::docs_router(api))
        // An operations endpoint in Prometheus' text format, kept out of the API document.
        .route("/metrics", axum::routing::get(metrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                ]))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(log_response)
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(headers::security())
                .layer(metrics::TrackLayer)
                .layer(CatchPanicLayer::custom(on_panic))
                .map_future(move |response| within(request_timeout, response))
                .layer(DefaultBodyLimit::max(limits.max_body_bytes))
                .option_layer(headers::cors(&limits.cors_origins)),
        )
        .with_state(state)
}

/// Unknown routes answer in the shape of the surface the path belongs to.
async fn not_found(uri: axum::http::Uri) -> Response {
    if compat::owns(uri.path()) {
        compat::CompatError(ApiError::NotFound).into_response()
    } else {
        ApiError::NotFound.into_response()
    }
}

async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    if compat::owns(uri.path()) {
        compat::CompatError(ApiError::MethodNotAllowed).into_response()
    } else {
        ApiError::MethodNotAllowed.into_response()
    }
}

/// Both API surfaces' routes, with the request-rate shield in front of the credential routes
/// when `shield` limits are given.
fn api_routes(shield: Option<&Limits>) -> utoipa_axum::router::OpenApiRouter<AppState> {
    let (native_credentials, compat_credentials) = match shield {
        Some(limits) => (
            shield::layer(limits, false, native::credential_routes()),
            shield::layer(limits, true, compat::credential_routes()),
        ),
        None => (native::credential_routes(), compat::credential_routes()),
    };
    native::router()
        .merge(native_credentials)
        .merge(compat::router())
        .merge(compat_credentials)
}

/// One span per request: method, route template, request id and, once known, the user id.
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        user_id = tracing::field::Empty,
    )
}

fn log_response<B>(response: &axum::http::Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "request completed"
    );
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    error::internal(&anyhow::anyhow!("handler panicked"))
}

/// A request that runs past the configured deadline (`REQUEST_TIMEOUT_SECS`) answers 503.
async fn within<F>(deadline: Duration, response: F) -> Result<Response, Infallible>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    tokio::time::timeout(deadline, response)
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(timeout_secs = deadline.as_secs(), "request timed out");
            Ok(ApiError::Timeout.into_response())
        })
}

/// The OpenAPI document as pretty JSON.
pub fn openapi_json() -> String {
    openapi::spec_json()
}

/// `/users/` and `/users` are the same route (the FastAPI seeds use the former). Swagger UI's
/// own `/docs/` keeps its slash.
pub fn trim_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') && !path.starts_with("/docs") {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let rewritten = match request.uri().query() {
            Some(query) => format!("{trimmed}?{query}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = rewritten.parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}
