//! What the API and the pages both show, computed once: a machine's
//! status, the server's health.

pub mod health;
pub mod status;
