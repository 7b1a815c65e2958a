//! Integration tests: the real gateway, a real echo upstream and a real `redis-server`, all on
//! ephemeral loopback ports.

mod support;

mod admin;
mod assertion;
mod bearer;
mod browsers;
mod cases;
mod cli;
mod connections;
mod deploy;
mod failover;
mod forward_auth;
mod forward_auth_nginx;
mod forwarded;
mod h2_limits;
mod lifetimes;
mod logs;
mod metrics;
mod outage;
mod paths;
mod proxy;
mod redis_tls;
mod regulation;
mod reload;
mod replicas;
mod session_api;
mod session_cache;
mod session_management;
mod sessions_cli;
mod smuggling;
mod store;
mod tls;
mod tls_reload;
mod upstream_check;
mod upstream_tls;
mod users_file;
mod websockets;
