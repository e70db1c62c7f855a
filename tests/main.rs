//! Integration tests: the real client, CLI and decoders against real
//! WebSocket servers on 127.0.0.1 that play each backend style. One binary
//! with a module per area (STYLE.md, "Tests"); shared helpers in `common`.

mod client;
mod common;
