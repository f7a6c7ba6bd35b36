//! Campaigns: typed, versioned cashback rules and the pure evaluator that applies them to an
//! order. Definitions arrive as [`RawCampaign`] (JSON at the API), become [`CampaignRules`]
//! through [`parse`] (every problem at once, each with its path), and are evaluated by
//! [`evaluate`]. This module never reads a clock, a store or a random source: usage so far,
//! the customer's facts and the instant are arguments; recording lots and debiting budgets
//! is the engine's job, under its own locks.
//!
//! # The base rate is a campaign
//! The program's `base_rate_bp` takes part as the campaign `base_rate` (version 0, funded by
//! the retailer, no conditions, no caps) in the **best-of** group, ranked below every
//! campaign priority. [`crate::cashback::compute_cashback`] is [`evaluate`] with no
//! campaigns.
//!
//! # Which lines a campaign pays on
//! A line earns from a campaign when all of these hold:
//! - no **program-wide exclusion** ([`CampaignSet::new`]) names its category, SKU or tag:
//!   such a line earns nothing from anything, the base rate included;
//! - it passes the campaign's line filter: each *non-empty* list among `categories`, `skus`
//!   and `tags` must match (AND across lists, OR within one);
//! - the campaign's own `exclude` names none of its category, SKU or tags. Exclusion beats
//!   inclusion: an `eco` line in an excluded category earns nothing from a green campaign;
//! - for a favourite-category reward, it is in the customer's favourite category.
//!
//! The campaign's **eligible amount** is the sum over those lines of net − the part paid with
//! cashback. `min_eligible_order_minor` and tier thresholds are compared with it (a tier
//! `from_minor` is inclusive: exactly R$ 200,00 reaches the R$ 200,00 tier).
//!
//! # Window and conditions
//! Windows are local to the program's zone (or the campaign's own `time_zone`): `starts_on`
//! and `ends_on` are inclusive dates (23:59:59 on the last day is in, midnight after is
//! out); `days_of_week` and `hours` are checked on the same local instant; hours are `from`
//! inclusive, `until` exclusive, wrapping past midnight when `until < from`. Birthdays are
//! local dates too; a 29 February birthday falls on 28 February in common years.
//!
//! # Amounts, rounding and caps
//! Each campaign resolves to one rate for the order (or a fixed amount), so its exact amount
//! is `eligible × rate`; it is rounded half-even **once per campaign per order** (campaigns
//! are recorded and capped separately, so each needs its own whole amount). A fixed amount is
//! first limited to the eligible amount. Caps then clip the rounded amount, in this order:
//! per order; the customer's day, week, month, and whole-campaign totals; the campaign's
//! budget. Each takes `cap − used so far` (never below zero), so no cap or budget is ever
//! exceeded by the amounts this function returns. The campaign's final amount is split over
//! its lines by largest remainder on their eligible amounts, so lines add up exactly.
//!
//! # Stacking
//! A campaign *applies* when it matches and pays more than zero after caps.
//! - If any **exclusive** campaign applies, the one with the highest priority (ties: the
//!   higher amount, then the lower id) is the only thing paid: the base rate and every other
//!   campaign are suppressed.
//! - Otherwise the **best-of** group (the base rate and every applying best-of campaign)
//!   pays only its highest amount (ties: higher priority, then lower id; the base rate ranks
//!   below every priority), and **every** applying **stackable** campaign adds to it.
//! - The base rate is always a best-of candidate, even when it pays zero, so every line still
//!   explains itself as before campaigns existed.
//!
//! # Holdouts
//! A campaign may hold out a share of the customers it reaches (an experiment, see
//! [`Holdout`]). The engine decides the customer's arm; a campaign named in
//! [`CustomerFacts::held_out`] is evaluated as if it did not exist (it suppresses nothing,
//! the base rate and other campaigns pay as they would without it), and when it matches the
//! order it is listed with amount 0, `held_out` set, and a sentence saying so, as are the
//! lines it would have paid on. [`holdout_candidates`] names the campaigns whose arm the
//! engine must decide for an order: those with a holdout that match it and would pay
//! something before caps.
//!
//! Caps and budgets are judged per campaign before selection, so a campaign whose budget is
//! spent pays zero, does not apply, and suppresses nothing. Stacked campaigns are not capped
//! together: a line's cashback can exceed its eligible amount if stacked rates add up past
//! 100 %.

mod eval;
mod raw;
mod reach;
mod rules;
mod time;

pub use eval::{
    capped_candidates, evaluate, evaluate_amounts, holdout_candidates, prepare, AmountPaid,
    Amounts, CampaignOutcome, CampaignUsage, CapKind, CappedCandidate, CustomerFacts, EvalContext,
    Evaluation, Prepared,
};
pub use raw::{
    RawCampaign, RawCaps, RawConditions, RawExclusions, RawFunding, RawHours, RawReward,
    RawStacking, RawTier, RawWindow,
};
pub use rules::{
    parse, parse_exclusions, parse_zone, Birthday, CampaignProblem, CampaignRules, CampaignSet,
    CampaignSetError, CampaignVersion, Caps, Exclusions, Funding, Holdout, Reward, Stacking,
    StackingMode, Tier, BASE_RATE_ID, MAX_CAMPAIGN_HOLDOUT_BP,
};
pub use time::{favourite_category, period_starts, PeriodStarts};

#[cfg(test)]
mod tests;
