//! Every input has a bound. Each bound is a named constant with the reason it is what it is.
//! Together they keep every sum inside i64 (see the comment on [`MAX_LINES_PER_ORDER`]).

/// Identifiers come from POS and web systems; 128 covers UUIDs, ULIDs and prefixed ids.
pub const MAX_ID_LEN: usize = 128;
/// Free text (emails, phone numbers, names of campaigns).
pub const MAX_TEXT_LEN: usize = 320;
/// A large basket at a hypermarket till is a few hundred lines; 500 leaves room and bounds
/// the work of one request.
pub const MAX_LINES_PER_ORDER: usize = 500;
/// Units of one line. With [`MAX_UNIT_PRICE_MINOR`] and [`MAX_LINES_PER_ORDER`] an order total
/// is at most 500 × 100_000 × 10^11 = 5 × 10^18 < i64::MAX (9.2 × 10^18).
pub const MAX_QUANTITY: i64 = 100_000;
/// One billion in a two-decimal currency per unit.
pub const MAX_UNIT_PRICE_MINOR: i64 = 100_000_000_000;
/// Tags per line and segments per customer.
pub const MAX_TAGS: usize = 32;
/// Lines named in one return.
pub const MAX_RETURN_LINES: usize = MAX_LINES_PER_ORDER;
/// Statement and event pages.
pub const MAX_PAGE_SIZE: usize = 500;
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Next expirations shown on the wallet.
pub const WALLET_EXPIRATIONS_SHOWN: usize = 10;
/// Days a program setting may name (pending, expiry, grace, warning): ten years.
pub const MAX_DAYS: u32 = 3_650;
/// Hold time-to-live: at most one day; a till that needs longer should re-authorize.
pub const MAX_HOLD_TTL_SECS: u32 = 86_400;
/// Request bodies: 500 lines of JSON fit comfortably in 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Campaign versions one evaluation considers. A retailer runs tens of campaigns at once;
/// 256 leaves room while keeping one order's evaluation within microseconds.
pub const MAX_CAMPAIGNS_PER_EVALUATION: usize = 256;
/// Tiers of one tiered reward: real programs use two to five; more is a table, not a rule.
pub const MAX_TIERS: usize = 16;
/// Entries of one campaign list (SKUs, categories, stores...): a brand's whole catalogue of
/// SKUs fits, and parsing one definition stays cheap.
pub const MAX_CAMPAIGN_LIST_LEN: usize = 2_000;
/// A birthday window of ±31 days is already a whole month either side.
pub const MAX_BIRTHDAY_WINDOW_DAYS: u32 = 31;
/// How far back a favourite category may look: two years of history.
pub const MAX_LOOKBACK_DAYS: u32 = 730;
/// Campaign priorities: plenty of room to slot a campaign between two others.
pub const MAX_PRIORITY: u32 = 1_000_000;
/// A multiplier of the base rate, in percent of it: at most 100× (the result is still capped
/// at 100 %).
pub const MAX_FACTOR_PERCENT: u32 = 10_000;
