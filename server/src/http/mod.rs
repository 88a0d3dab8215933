//! The HTTP front, in layers; each imports only those below it:
//!
//! | layer | what it holds |
//! |---|---|
//! | [`pool`] | the acceptor and the worker pool (imported by nobody) |
//! | [`router`] | method and path to handler, as in `docs/PROTOCOL.md` |
//! | [`api`] and [`pages`] | handlers for programs (JSON, contents) and for browsers (HTML); never import each other |
//! | [`views`] | what both show: a machine's status, the server's health |
//! | [`ctx`] | the state handlers share |
//! | [`auth`] | identity, sessions, the login limiter, CSRF and origin checks |
//! | [`meter`] | request and error rates |
//! | [`core`] | reading requests (headers, query, forms, cookies) and writing replies and errors |

mod api;
mod auth;
mod core;
mod ctx;
mod meter;
mod pages;
mod pool;
mod router;
mod views;

pub use ctx::Ctx;
pub use pool::{log_start, serve};
pub use views::status::machine_states;
