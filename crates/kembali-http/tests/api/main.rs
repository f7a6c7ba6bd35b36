//! HTTP tests: the whole router driven through `oneshot`, without a socket, on the
//! in-memory store and a test clock.

mod auth;
mod campaigns;
mod clock;
mod common;
mod endpoints;
mod generated;
mod metrics;
mod openapi;
mod outage;
mod problems;
mod reports;
