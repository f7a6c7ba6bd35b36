//! A campaign definition as the API accepts it: plain JSON values, no meaning checked yet.
//! Unknown fields are refused so a misspelt option never silently does nothing. Numbers are
//! `i64` and names are strings on purpose: range and name problems are then reported by
//! [`super::parse`] all at once, each with its path, instead of serde stopping at the first.

use serde::{Deserialize, Serialize};

/// The whole definition of one campaign version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCampaign {
    pub name: String,
    pub window: RawWindow,
    #[serde(default)]
    pub conditions: RawConditions,
    pub reward: RawReward,
    #[serde(default)]
    pub caps: RawCaps,
    pub stacking: RawStacking,
    #[serde(default)]
    pub funding: RawFunding,
    /// A holdout experiment on the campaign: a share of the customers it reaches is kept out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<RawHoldout>,
}

/// `{"share_bp": 1000, "salt": "…"}`: the share of the campaign's customers held out (basis
/// points) and the salt of their assignment (default: the campaign id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHoldout {
    pub share_bp: i64,
    #[serde(default)]
    pub salt: Option<String>,
}

/// When the campaign runs, in local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// First day, `YYYY-MM-DD`, inclusive.
    pub starts_on: String,
    /// Last day, `YYYY-MM-DD`, inclusive (up to 23:59:59.999… local time).
    pub ends_on: String,
    /// `mon` … `sun`; empty means every day.
    #[serde(default)]
    pub days_of_week: Vec<String>,
    #[serde(default)]
    pub hours: Option<RawHours>,
    /// An IANA zone name; absent means the program's zone.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Daily hours, `HH:MM` or `HH:MM:SS`: `from` inclusive, `until` exclusive. `until` before
/// `from` wraps past midnight (22:00–02:00).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHours {
    pub from: String,
    pub until: String,
}

/// Who and what earns. Every list empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConditions {
    pub channels: Vec<String>,
    pub stores: Vec<String>,
    pub categories: Vec<String>,
    pub skus: Vec<String>,
    pub tags: Vec<String>,
    pub min_eligible_order_minor: Option<i64>,
    pub first_purchase_only: bool,
    pub birthday_month: bool,
    pub birthday_within_days: Option<i64>,
    pub segments: Vec<String>,
    pub partners: Vec<String>,
    pub exclude: RawExclusions,
}

/// Lines that never earn from the campaign (or, program-wide, from anything).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawExclusions {
    pub categories: Vec<String>,
    pub skus: Vec<String>,
    pub tags: Vec<String>,
}

/// What the campaign pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawReward {
    /// A rate on the eligible amount.
    Percent { rate_bp: i64 },
    /// A fixed amount per order, spread over the eligible lines.
    Fixed { amount_minor: i64 },
    /// A rate chosen by the eligible order value: the last tier whose `from_minor` it reaches.
    Tiered { tiers: Vec<RawTier> },
    /// The program's base rate times `factor_percent` / 100 (200 = double).
    Multiplier { factor_percent: i64 },
    /// A rate on lines of the customer's favourite category (most spend over `lookback_days`).
    FavouriteCategory { rate_bp: i64, lookback_days: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub from_minor: i64,
    pub rate_bp: i64,
}

/// Upper bounds on what the campaign pays; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCaps {
    pub per_order_minor: Option<i64>,
    pub per_customer_day_minor: Option<i64>,
    pub per_customer_week_minor: Option<i64>,
    pub per_customer_month_minor: Option<i64>,
    pub per_customer_campaign_minor: Option<i64>,
    pub budget_minor: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStacking {
    /// `exclusive`, `best_of` or `stackable`.
    pub mode: String,
    #[serde(default)]
    pub priority: i64,
}

/// Who pays: `retailer` (the default), or `partner` with the partner's id and share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFunding {
    pub payer: String,
    #[serde(default)]
    pub partner_id: Option<String>,
    /// The partner's share of the cost; the retailer pays the rest.
    #[serde(default)]
    pub partner_share_bp: Option<i64>,
}

impl Default for RawFunding {
    fn default() -> Self {
        RawFunding {
            payer: "retailer".into(),
            partner_id: None,
            partner_share_bp: None,
        }
    }
}
