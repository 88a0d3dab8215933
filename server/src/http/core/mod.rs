//! The bottom layer of the HTTP front: reading a request (headers, query,
//! forms, cookies, the route's target, small bodies) and writing a reply
//! (statuses, errors, bodies). Imports nothing else of `http/`.

pub mod body;
pub mod conditional;
pub mod form;
pub mod preview;
pub mod range;
pub mod reply;
pub mod request;

pub use reply::{ApiError, Body, Reply};

/// What every handler returns.
pub type Handled = Result<Reply, ApiError>;
