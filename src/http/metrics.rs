//! Request metrics and the `/metrics` endpoint.
//!
//! Every response is counted by method, route template and status. The domain counters
//! (registrations, logins, refreshes) are derived here from the route and the status as well,
//! which keeps the services free of metrics: the status already says how the use case ended.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram, counter, gauge, histogram};
use pin_project_lite::pin_project;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use super::AppState;
use super::error::ErrorBody;
use crate::domain::SecretString;
use crate::telemetry::metrics::{
    DB_POOL_CONNECTIONS, HTTP_REQUEST_DURATION, HTTP_REQUESTS_TOTAL, LOGINS, TOKEN_REFRESH, USERS_REGISTERED,
};
use crate::telemetry::{self, process};

/// The `path` label of requests that matched no route. Raw URLs never become labels, so
/// scanning for unknown URLs cannot grow the number of series.
pub const UNMATCHED: &str = "<unmatched>";

/// Records `http_request_duration_seconds`, `http_requests_total` and the domain counters for
/// every request it wraps. A tower layer rather than a `from_fn` middleware, which would box
/// and clone the services inside it for every request. Sits outside the timeout and panic
/// layers, so their 503s and 500s are counted too.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

/// The service of [`TrackLayer`].
#[derive(Clone, Debug)]
pub struct Track<S> {
    inner: S,
}

impl<S, B> Service<Request> for Track<S>
where
    S: Service<Request, Response = axum::http::Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        Tracked {
            method: method_label(request.method()),
            route: request.extensions().get::<MatchedPath>().cloned(),
            started: Instant::now(),
            response: self.inner.call(request),
        }
    }
}

pin_project! {
    /// A request's response on its way out, recorded when it is ready.
    pub struct Tracked<F> {
        #[pin]
        response: F,
        method: &'static str,
        route: Option<MatchedPath>,
        started: Instant,
    }
}

impl<F, B, E> Future for Tracked<F>
where
    F: Future<Output = Result<axum::http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.response.poll(cx));
        if let Ok(response) = &result {
            let path = this.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            let status = response.status().as_u16();
            if let Some(event) = domain_event(this.method, path, status) {
                match event {
                    Event::Registered => counter!(USERS_REGISTERED).increment(1),
                    Event::Login(result) => counter!(LOGINS, "result" => result).increment(1),
                    Event::Refresh(result) => counter!(TOKEN_REFRESH, "result" => result).increment(1),
                }
            }
            record_request(this.method, path, status, this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

/// One request series: its method and status, and the handles of its two metrics.
type Series = (&'static str, u16, Histogram, Counter);

thread_local! {
    /// The request series this thread has recorded, by route. Naming a series by its labels
    /// costs a registry lookup and a dozen small allocations, twice a request; a handle costs
    /// an atomic add. Bounded by routes × methods × statuses, as the series themselves are.
    static SERIES: RefCell<HashMap<Box<str>, Vec<Series>>> = RefCell::default();
}

fn record_request(method: &'static str, path: &str, status: u16, seconds: f64) {
    // Handles are only kept once the recorder is in place: taken before, they would record
    // nowhere for good.
    if telemetry::metrics::handle().is_none() {
        let (duration, total) = register_series(method, path, status);
        duration.record(seconds);
        total.increment(1);
        return;
    }
    SERIES.with_borrow_mut(|series| {
        let by_route = match series.get_mut(path) {
            Some(by_route) => by_route,
            None => series.entry(path.into()).or_default(),
        };
        let at = match by_route.iter().position(|s| s.0 == method && s.1 == status) {
            Some(at) => at,
            None => {
                let (duration, total) = register_series(method, path, status);
                by_route.push((method, status, duration, total));
                by_route.len() - 1
            }
        };
        let (_, _, duration, total) = &by_route[at];
        duration.record(seconds);
        total.increment(1);
    });
}

fn register_series(method: &str, path: &str, status: u16) -> (Histogram, Counter) {
    let labels = [
        ("method", method.to_owned()),
        ("path", path.to_owned()),
        ("status", status.to_string()),
    ];
    (
        histogram!(HTTP_REQUEST_DURATION, &labels),
        counter!(HTTP_REQUESTS_TOTAL, &labels),
    )
}

/// Standard methods by name; anything else (clients may invent methods) shares one label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Registered,
    Login(&'static str),
    Refresh(&'static str),
}

/// What a finished request means for the domain counters. Statuses not listed (422 for a
/// malformed body, 503 for an outage, …) are not attempts the business counts.
fn domain_event(method: &str, path: &str, status: u16) -> Option<Event> {
    if method != "POST" {
        return None;
    }
    match (path, status) {
        // Self-registration and accounts created by administrators, on both surfaces.
        ("/auth/register" | "/users" | "/api/register" | "/api/users", 201) => Some(Event::Registered),
        ("/auth/login" | "/api/login", 200) => Some(Event::Login("success")),
        ("/auth/login" | "/api/login", 401) => Some(Event::Login("failure")),
        ("/auth/login" | "/api/login", 403) => Some(Event::Login("inactive")),
        ("/auth/login" | "/api/login", 429) => Some(Event::Login("throttled")),
        ("/auth/refresh", 200) => Some(Event::Refresh("success")),
        ("/auth/refresh", 401) => Some(Event::Refresh("failure")),
        _ => None,
    }
}

/// `GET /metrics`: the Prometheus text exposition. With `METRICS_TOKEN` set, only requests
/// bearing that token are answered.
pub async fn render(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.ops.metrics_token
        && !bearer_matches(&headers, token)
    {
        let mut response = (
            StatusCode::UNAUTHORIZED,
            axum::Json(ErrorBody {
                detail: "Not authenticated".into(),
            }),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let Some(handle) = telemetry::metrics::handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(ErrorBody {
                detail: "metrics are not available".into(),
            }),
        )
            .into_response();
    };
    // Pool gauges are sampled now rather than kept current on every checkout.
    if let Some(pool) = crate::store::pool_stats(&state.core.db) {
        gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(pool.idle);
        gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(pool.in_use);
        gauge!(DB_POOL_CONNECTIONS, "state" => "max").set(pool.max);
    }
    let mut body = handle.render();
    process::render(&mut body);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Compares the presented bearer token with the configured one in constant time. Both are
/// hashed first so that neither the comparison nor its length reveals anything.
fn bearer_matches(headers: &HeaderMap, expected: &SecretString) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.expose().as_bytes());
    presented.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_refreshes_and_registrations_map_from_route_and_status() {
        assert_eq!(
            domain_event("POST", "/auth/login", 200),
            Some(Event::Login("success"))
        );
        assert_eq!(
            domain_event("POST", "/api/login", 401),
            Some(Event::Login("failure"))
        );
        assert_eq!(
            domain_event("POST", "/auth/login", 403),
            Some(Event::Login("inactive"))
        );
        assert_eq!(
            domain_event("POST", "/auth/login", 429),
            Some(Event::Login("throttled"))
        );
        assert_eq!(domain_event("POST", "/auth/login", 422), None);
        assert_eq!(
            domain_event("POST", "/auth/refresh", 200),
            Some(Event::Refresh("success"))
        );
        assert_eq!(
            domain_event("POST", "/auth/refresh", 401),
            Some(Event::Refresh("failure"))
        );
        for path in ["/auth/register", "/users", "/api/register", "/api/users"] {
            assert_eq!(domain_event("POST", path, 201), Some(Event::Registered), "{path}");
            assert_eq!(domain_event("POST", path, 409), None, "{path}");
        }
        assert_eq!(domain_event("GET", "/users", 200), None);
    }

    #[test]
    fn the_metrics_token_must_match_exactly() {
        let token = SecretString::new("s3cret-token");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        assert!(bearer_matches(&with("Bearer s3cret-token"), &token));
        assert!(bearer_matches(&with("bearer s3cret-token"), &token));
        assert!(!bearer_matches(&with("Bearer s3cret-toke"), &token));
        assert!(!bearer_matches(&with("Basic s3cret-token"), &token));
        assert!(!bearer_matches(&HeaderMap::new(), &token));
    }
}
