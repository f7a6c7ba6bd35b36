//! The statistics of measuring the program: customer summaries (RFM), the BG/NBD and
//! Gamma-Gamma models and the lifetime value they predict, and holdout experiments.
//!
//! Pure like the rest of the core: data comes in as values (the caller reads files and
//! databases), nothing reads a clock, and nothing draws randomness (holdout assignment is a
//! hash). Statistics are `f64`; amounts of money that leave this module are whole minor
//! units (`i64`) rounded half to even, and every `f64` in minor units is named `*_minor`
//! and documented as a statistic (a mean or an expectation), not an amount to book.
//!
//! - [`rfm`]: x, t_x, T and z̄ of one customer over a calibration period.
//! - [`cdnow`]: the CDNOW data set's line format, to check the models on published results.
//! - [`bgnbd`]: BG/NBD fit, expected purchases and P(alive).
//! - [`gamma_gamma`]: Gamma-Gamma fit and expected spend per purchase.
//! - [`clv`]: predicted value over a horizon.
//! - [`experiment`]: sticky holdout assignment, Welch test, sample-ratio mismatch, ROI.
//! - [`metrics`]: the program's metrics and reports (summary, retention, lifetime value,
//!   experiments) on fact rows a store reads.
//! - [`special`]: the Gauss hypergeometric function ₂F₁.

pub mod bgnbd;
pub mod cdnow;
pub mod clv;
pub mod experiment;
pub mod gamma_gamma;
pub mod metrics;
mod optimize;
pub mod rfm;
pub mod special;
