//! The client's behaviour against scripted servers, one module per area.
//! (Kept in a directory so cargo does not take each file in `tests/` for a
//! test target of its own.)

mod auth;
mod bad_frames;
mod cli;
mod native_resume;
mod polling;
mod reconnect;
mod styles;
mod tls;
