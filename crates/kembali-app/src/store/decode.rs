//! Turning stored text back into typed values, for every adapter: a value that does not
//! parse means the database holds what no version of Kembali wrote, so it is `Corrupt`.

use super::{
    AssignmentRecord, CampaignAction, CampaignStatus, OrderKey, StoreResult, UsagePeriod, UsageRow,
};
use crate::error::StoreError;
use chrono::{DateTime, Utc};
use kembali_core::analytics::experiment::Arm;
use kembali_core::ids::{CampaignId, Channel, CustomerId, IdError, OrderId};
use kembali_core::money::BasisPoints;

pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(corrupt)
}

pub fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(corrupt)
}

pub fn channel(s: &str) -> StoreResult<Channel> {
    Channel::parse(s).ok_or_else(|| corrupt(format!("unknown channel {s}")))
}

pub fn id<T>(r: Result<T, IdError>) -> StoreResult<T> {
    r.map_err(corrupt)
}

/// An order reference stored as two nullable columns.
pub fn order_key(ch: Option<String>, oid: Option<String>) -> StoreResult<Option<OrderKey>> {
    match (ch, oid) {
        (Some(c), Some(o)) => Ok(Some(OrderKey {
            channel: channel(&c)?,
            order_id: id(OrderId::parse(o))?,
        })),
        _ => Ok(None),
    }
}

pub fn campaign_status(s: &str) -> StoreResult<CampaignStatus> {
    CampaignStatus::parse(s).ok_or_else(|| corrupt(format!("campaign status {s}")))
}

pub fn campaign_action(s: &str) -> StoreResult<CampaignAction> {
    CampaignAction::parse(s).ok_or_else(|| corrupt(format!("campaign action {s}")))
}

pub fn usage_row(
    campaign: String,
    period: &str,
    start: DateTime<Utc>,
    amount_minor: i64,
) -> StoreResult<UsageRow> {
    Ok(UsageRow {
        campaign_id: id(CampaignId::parse(campaign))?,
        period: UsagePeriod::parse(period).ok_or_else(|| corrupt(format!("period {period}")))?,
        start,
        amount_minor,
    })
}

/// An experiment assignment from its stored columns.
pub fn assignment(
    experiment_id: String,
    customer_id: CustomerId,
    arm: &str,
    share_bp: i64,
    first_seen_at: DateTime<Utc>,
) -> StoreResult<AssignmentRecord> {
    Ok(AssignmentRecord {
        experiment_id,
        customer_id,
        arm: Arm::parse(arm).ok_or_else(|| corrupt(format!("arm {arm}")))?,
        share_bp: BasisPoints(u32::try_from(share_bp).map_err(corrupt)?),
        first_seen_at,
    })
}
