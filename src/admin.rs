//! The admin listener: `/healthz` (the process runs), `/readyz` (listeners bound, config loaded,
//! not draining), `/readyz?verbose`, `/metrics` (Prometheus) and, with an EdDSA identity
//! assertion, `/.well-known/jwks.json` (its public key, for upstreams to verify with). Never
//! served on the proxy listener.
//!
//! Store health is watched with `PING` only, in the background, and fails readiness only when
//! `admin.ready_requires_store` is set, so a Redis blip never empties a Service of every replica;
//! it shows as `portcullis_store_up`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};

use crate::response::{self, Body};
use crate::state::AppState;

/// Where the identity assertion's public keys are served (a JWK Set).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How often the store is pinged.
pub const STORE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Answer one admin request.
pub fn handle<B>(state: &AppState, request: &Request<B>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed.",
        );
        response.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return response;
    }
    match request.uri().path() {
        "/healthz" => response::json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        "/readyz" => readiness(state, request.uri().query()),
        "/metrics" => response::text(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            state.metrics.encode(state.store_up.load(Ordering::Relaxed)),
        ),
        JWKS_PATH => match state
            .config
            .identity_headers
            .assertion
            .as_ref()
            .and_then(|a| a.signer.jwks())
        {
            Some(jwks) => response::json(StatusCode::OK, &jwks),
            None => not_found(),
        },
        _ => not_found(),
    }
}

fn not_found() -> Response<Body> {
    response::error(StatusCode::NOT_FOUND, "not_found", "Not found.")
}

fn readiness(state: &AppState, query: Option<&str>) -> Response<Body> {
    let draining = state.is_draining();
    let store_up = state.store_up.load(Ordering::Relaxed);
    let ready = !draining && (store_up || !state.config.admin.ready_requires_store);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let verbose = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    let body = if verbose {
        serde_json::json!({ "ready": ready, "draining": draining, "store": if store_up { "up" } else { "down" } })
    } else {
        serde_json::json!({ "ready": ready })
    };
    response::json(status, &body)
}

/// Ping the store every [`STORE_CHECK_INTERVAL`] and record the result; logs transitions.
pub fn spawn_store_watch(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STORE_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let up = state.sessions.store().ping().await.is_ok();
            let was = state.store_up.swap(up, Ordering::Relaxed);
            if was != up {
                if up {
                    tracing::info!("session store is up");
                } else {
                    tracing::warn!("session store is down");
                }
            }
        }
    })
}
