//! `nimbus-client` as a library: backs up a folder to a Nimbus server, then
//! keeps watching it (polling) and backs up every new or changed file; and
//! restores what the server holds. `main.rs` only calls [`cli::main`].
//!
//! Layers, bottom up: [`scan`] (the folder), [`state`] (what the server
//! acknowledged) and [`activity`] (what the running client is doing), [`tls`] and [`api`] (talking to the server), [`login`],
//! [`backup`] and [`restore`] (the jobs), [`update`] (replacing itself with
//! a signed newer build), [`service`] (starting at logon),
//! [`cli`] (arguments and exit codes).

pub mod activity;
pub mod api;
pub mod backup;
pub mod cli;
pub mod error;
pub mod login;
pub mod policy;
pub mod restore;
pub mod scan;
pub mod service;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod update;

pub use error::ClientError;
