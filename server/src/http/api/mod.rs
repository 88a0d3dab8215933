//! The routes programs use (the client, scripts, the page's own script,
//! a metrics scraper): JSON in and out, or file contents. Never imports
//! `pages/`.

pub mod account;
pub mod admin;
pub mod alerts;
pub mod archive;
pub mod batch;
pub mod builds;
pub mod chunks;
pub mod download;
pub mod files;
pub mod history;
pub mod metrics;
pub mod policy;
pub mod uploads;
