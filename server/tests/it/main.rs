//! The integration tests, one binary (ripgrep's layout): each module is a
//! behaviour, driving the real `nimbus-server` and `nimbus-client` over
//! real HTTP (and a real browser, TLS proxy and Wine where the behaviour
//! needs one). `fixtures/` starts them; `webdriver/` speaks to chromedriver.

mod fixtures;
mod webdriver;

mod accounts_cli;
mod admin;
mod alerts;
mod auth;
mod backup;
mod bad_input;
mod batch;
mod browser;
mod catalog;
mod chromium;
mod chunks;
mod client_edges;
mod client_status;
mod crash;
mod curl;
mod download;
mod encryption;
mod enrollment;
mod history;
mod hostile;
mod http_lint;
mod https;
mod isolation;
mod old_data;
mod packing;
mod policy;
mod proxy;
mod registration;
mod retention;
mod s3;
mod self_update;
mod server_cli;
mod storage_history;
mod uploads;
mod wine;
mod xss;
