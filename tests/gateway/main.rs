//! Integration tests: the real gateway, a real echo upstream and a real `redis-server`, all on
//! ephemeral loopback ports.

mod support;

mod session_api;
mod cases;
mod outage;
mod proxy;
mod store;
