//! Use cases of the cashback engine and the ports they need: [`store::Store`] (a database
//! with transactions) and [`clock::Clock`] (the time). [`fake::MemoryStore`] is an in-memory
//! store for tests; it passes the same conformance suite as the real adapters.

pub mod backtest;
pub mod campaign_admin;
pub mod campaigns;
pub mod clock;
pub mod engine;
pub mod error;
pub mod experiments;
pub mod fake;
pub mod import;
pub mod metrics;
pub mod model;
pub mod orders;
pub mod redemptions;
pub mod store;
pub mod wallet;

pub use engine::Engine;
pub use error::{AppError, AppResult, FieldProblem, StoreError};
