//! Hub integration tests: the real hub on 127.0.0.1 and the real client
//! (or a raw WebSocket where the test needs to misbehave). One binary, a
//! module per area.

mod auth;
mod config;
mod criticals;
mod durable;
mod jwks;
mod laptop_sleep;
mod limits;
mod metrics;
mod offline;
mod publish;
mod redis_nodes;
mod replay;
mod resume;
mod reuse_port;
mod shutdown;
mod silence;
mod styles;
mod support;
mod tls;
