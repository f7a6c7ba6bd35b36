//! The demo retailer: a synthetic chain (web, app and 5 stores; a catalogue with `eco`
//! products; a year of purchases, returns and cross-channel redemptions; a 10 % program
//! holdout) whose true effect of cashback on frequency and ticket is known, so the
//! program's experiment report can be checked against it.
//!
//! - [`model`]: the behaviour model and its analytic expectations (pure, seeded).
//! - [`load`]: stores a generated chain's early months as imported history and plays the
//!   rest into a program through the engine's use cases.
//! - [`coverage`]: the 95 % interval coverage check over many seeds.
//!
//! Must never: draw randomness from anything but the seed, or write to a store except
//! through the engine's use cases and the history import's own port calls
//! (`Tx::import_orders`, the program holdout's assignment).

pub mod coverage;
pub mod load;
pub mod model;
