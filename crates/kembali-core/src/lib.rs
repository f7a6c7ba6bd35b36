//! The pure core of Kembali: money, program settings, orders, the cashback function, ledger
//! postings, the rules that move lots and the statistics that measure the program. No I/O,
//! no clock reads, no randomness: every instant and every id comes in as an argument.

pub mod analytics;
pub mod campaign;
pub mod cashback;
pub mod ids;
pub mod ledger;
pub mod limits;
pub mod lots;
pub mod money;
pub mod order;
pub mod program;
