//! Turning stored text back into typed values, for every adapter: a value that does not
//! parse means the database holds what no version of Kembali wrote, so it is `Corrupt`.

use super::{OrderKey, StoreResult};
use crate::error::StoreError;
use kembali_core::ids::{Channel, IdError, OrderId};

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
