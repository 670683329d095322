//! The per-process request-rate shield on the credential routes (`tower_governor`): a cheap,
//! in-memory first line in front of the login throttle, so a flood from one address is
//! refused before it reaches the database or the password hasher.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_governor::GovernorLayer;
use tower_governor::errors::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use utoipa_axum::router::OpenApiRouter;

use super::{AppState, Limits};
use crate::http::extract::client_ip;

/// Keys requests by the same client address the login throttle uses.
#[derive(Clone)]
struct ClientKey(Arc<[IpAddr]>);

impl KeyExtractor for ClientKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        client_ip(req.extensions(), req.headers(), &self.0).ok_or(GovernorError::UnableToExtractKey)
    }
}

fn refused(compat: bool, error: GovernorError) -> Response {
    let wait = match error {
        GovernorError::TooManyRequests { wait_time, .. } => wait_time.max(1),
        _ => 1,
    };
    let message = format!("Too many requests; try again in {wait} seconds");
    let body = if compat {
        serde_json::json!({"error": "Too Many Requests", "message": message})
    } else {
        serde_json::json!({"detail": message})
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    response
}

/// Puts the shield in front of `routes` (POST requests only), unless it is turned off.
pub fn layer(limits: &Limits, compat: bool, routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    if limits.auth_rate_per_second == 0 {
        return routes;
    }
    let period = Duration::from_micros(1_000_000 / u64::from(limits.auth_rate_per_second));
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientKey(limits.trusted_proxies.clone().into()))
        .period(period)
        .burst_size(limits.auth_rate_burst.max(1))
        .methods(vec![Method::POST])
        .finish();
    let Some(config) = config else {
        tracing::warn!("invalid AUTH_RATE_* settings; the request-rate shield is off");
        return routes;
    };
    let config = Arc::new(config);
    // Forget idle clients now and then, so the limiter's memory stays bounded.
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
        }
    });
    routes.route_layer(GovernorLayer::<_, _, Body>::new(config).error_handler(move |e| refused(compat, e)))
}
