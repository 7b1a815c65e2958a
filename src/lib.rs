//! Portcullis: an authentication gateway.
//!
//! A reverse proxy that owns a session API (`POST`/`GET`/`DELETE /session`), keeps sessions in
//! Redis (or memory, for development), and forwards each allowed request to one upstream with
//! identity headers injected. Everything else it rejects. For a proxy that builds the upstream
//! request itself (nginx, Traefik, Caddy), it answers the same decision on a forward-auth endpoint.
//!
//! # Layout
//!
//! - [`config`]: the typed, validated configuration (YAML, `${VAR}` / `${file:...}`).
//! - [`server`]: listeners, accept loops, per-connection TLS handshakes, graceful drain.
//! - [`tls`]: rustls for the listener (certificate and client CA reloaded without a restart,
//!   optional client certificates) and the roots of the `https://` upstream client.
//! - [`router`]: canonical path, then one match: session API, forward-auth endpoint or gateway.
//! - [`access`]: path canonicalization, the readings of a path and access rules; pure.
//! - [`gateway`]: the phases of a proxied request: authorize (the one access decision), prepare,
//!   forward.
//! - [`headers`]: header hygiene as pure functions; [`bearer`], bearer tokens in
//!   `Authorization`.
//! - [`forward`]: the upstream client and its timeouts.
//! - [`websocket`]: which requests and `101` answers are a WebSocket handshake; pure.
//! - [`tunnel`]: WebSocket tunnels after a `101`, their lifetime and their end at shutdown.
//! - [`framing`]: transfer codings and header-section limits hyper leaves to us.
//! - [`session`]: ids, signed cookies, records; [`session::index`], each user's index of
//!   sessions; [`session::store`] with memory and Redis backends (one server, Cluster or
//!   Sentinel) and a wrapper that measures either.
//! - [`session_api`]: log in, tell the session, log out; list the caller's sessions, end one or
//!   all of them.
//! - [`sessions_cli`]: `portcullis sessions list|revoke`, an operator's view of a user's sessions.
//! - [`forward_auth`]: the decision endpoint for nginx `auth_request`, Traefik and Caddy: reads
//!   the request a trusted proxy describes and answers it with [`gateway::authorize`].
//! - [`identity`]: the identity sources in order: local users (argon2 and bcrypt hashes, verified
//!   on a bounded pool) and the delegated credential check; who a session still belongs to.
//! - [`assertion`]: the signed identity assertion (a JWT) sent to the upstream, and its JWKS.
//! - [`regulation`]: failed-login counters and bans, kept in the session store.
//! - [`client_addr`]: the client address, believing `X-Forwarded-For` only from trusted proxies.
//! - [`csrf`]: the origin check on requests that would act under a cookie.
//! - [`cors`]: preflights and CORS headers for single-page apps on listed origins.
//! - [`login_redirect`]: page loads sent to the login page, and safe return targets.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and the assertion's JWKS on the admin listener.
//! - [`metrics`]: the Prometheus metrics and their text exposition; pure.
//! - [`context`]: the per-request context the phases fill in, and the access log line.
//! - [`log_output`]: log lines to stderr, gathered per connection worker while it is busy.
//! - [`request_id`]: `X-Request-Id`, kept from trusted proxies or generated.
//! - [`error`] and [`response`]: the one place errors become responses, and response builders.
//! - [`state`]: the state shared by every request; [`reload`]: users, rules and secrets anew
//!   on SIGHUP and whenever `users_file` changes.
//! - [`watchdog`]: header-read and keep-alive limits per connection.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(rust_2018_idioms)]

pub mod access;
pub mod admin;
pub mod assertion;
pub mod bearer;
pub mod client_addr;
pub mod config;
pub mod context;
pub mod cors;
pub mod csrf;
pub mod error;
pub mod forward;
pub mod forward_auth;
pub mod framing;
pub mod gateway;
pub mod headers;
pub mod identity;
pub mod log_output;
pub mod login_redirect;
pub mod metrics;
pub mod regulation;
pub mod reload;
pub mod request_id;
pub mod response;
pub mod router;
pub mod server;
pub mod session;
pub mod session_api;
pub mod sessions_cli;
pub mod state;
pub mod tls;
pub mod tunnel;
pub mod watchdog;
pub mod websocket;
