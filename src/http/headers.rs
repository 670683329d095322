//! Security headers on every response, and CORS when origins are configured.

use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// API answers are data, never pages: nothing may run, frame or sniff them. The docs pages get
/// a policy that lets Swagger UI's own scripts and styles (served from here) work and nothing
/// else.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// A constant, so the name is not parsed again for every response.
const CROSS_ORIGIN_OPENER_POLICY: HeaderName = HeaderName::from_static("cross-origin-opener-policy");
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; \
                        base-uri 'none'; form-action 'none'";

type SetHeader = SetResponseHeaderLayer<HeaderValue>;

/// The security headers every response carries: the API's content security policy unless the
/// route set its own (the docs pages do, through [`docs_policy`]).
pub fn security() -> (SetHeader, SetHeader, SetHeader, SetHeader, SetHeader) {
    let set = |name, value| SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value));
    (
        set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        set(header::X_FRAME_OPTIONS, "DENY"),
        set(header::REFERRER_POLICY, "no-referrer"),
        set(CROSS_ORIGIN_OPENER_POLICY, "same-origin"),
        SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ),
    )
}

/// The docs pages' content security policy, set by their routes. The OpenAPI document they
/// fetch is data, and keeps the API's.
pub fn docs_policy() -> SetResponseHeaderLayer<fn(&Response) -> Option<HeaderValue>> {
    SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, page_policy)
}

fn page_policy(response: &Response) -> Option<HeaderValue> {
    let data = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/json"));
    (!data).then_some(HeaderValue::from_static(DOCS_CSP))
}

/// CORS for the configured origins; `None` (no headers at all) when there are none.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([
                header::HeaderName::from_static("x-total-count"),
                header::HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
