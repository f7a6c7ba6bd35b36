//! Identifiers and names parsed at the edge: once a value has one of these types, nothing
//! deeper checks it again.

use crate::limits::MAX_ID_LEN;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a raw string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("may only contain letters, digits and - _ . : / @ +")]
    BadChar,
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { max: MAX_ID_LEN });
    }
    let ok = raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(IdError::BadChar)
    }
}

/// The prefix of a campaign holdout's experiment id: `campaign:<campaign id>`.
pub const CAMPAIGN_EXPERIMENT_PREFIX: &str = "campaign:";

/// An experiment id: an id, or [`CAMPAIGN_EXPERIMENT_PREFIX`] and a campaign id (which may
/// itself be as long as any id).
fn check_experiment_id(raw: &str) -> Result<(), IdError> {
    match raw.strip_prefix(CAMPAIGN_EXPERIMENT_PREFIX) {
        Some(campaign) if !campaign.is_empty() => check_id(campaign).map_err(|e| match e {
            IdError::TooLong { max } => IdError::TooLong {
                max: max + CAMPAIGN_EXPERIMENT_PREFIX.len(),
            },
            e => e,
        }),
        _ => check_id(raw),
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        string_id!($(#[$doc])* $name, check_id);
    };
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        /// As its string, borrowed (`into = "String"` would clone it first).
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl $name {
            pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                $check(&raw)?;
                Ok(Self(raw))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                Self::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The retailer's own id for a customer.
    CustomerId
);
string_id!(
    /// The channel's own id for an order; unique per channel.
    OrderId
);
string_id!(
    /// An order line's id, unique within its order.
    LineId
);
string_id!(
    /// A redemption (hold) id, chosen by the client or generated.
    RedemptionId
);
string_id!(
    /// A return's id, unique within its order.
    ReturnId
);
string_id!(
    /// A physical store or partner merchant.
    StoreId
);
string_id!(
    /// A stock-keeping unit.
    Sku
);
string_id!(
    /// A catalogue category.
    Category
);
string_id!(
    /// A product tag such as `eco`.
    Tag
);
string_id!(
    /// A customer segment such as `vip`.
    Segment
);
string_id!(
    /// A campaign, stable across its versions.
    CampaignId
);
string_id!(
    /// A partner merchant or brand that sells through the program or co-funds a campaign.
    PartnerId
);
string_id!(
    /// A holdout experiment: `program`, or `campaign:<id>` for a campaign's holdout.
    ExperimentId,
    check_experiment_id
);

/// Where a sale or a redemption happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Web,
    App,
    Store,
    Marketplace,
    Partner,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Web,
        Channel::App,
        Channel::Store,
        Channel::Marketplace,
        Channel::Partner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Store => "store",
            Channel::Marketplace => "marketplace",
            Channel::Partner => "partner",
        }
    }

    pub fn parse(raw: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ISO 4217 currency code (or, later, a points unit): three upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: impl Into<String>) -> Result<Self, &'static str> {
        let raw = raw.into();
        if raw.len() == 3 && raw.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency(raw))
        } else {
            Err("must be three upper-case letters (ISO 4217)")
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = &'static str;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Currency::parse(raw)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_odd_characters() {
        assert_eq!(CustomerId::parse(""), Err(IdError::Empty));
        assert_eq!(
            CustomerId::parse("x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong { max: MAX_ID_LEN })
        );
        assert_eq!(CustomerId::parse("a b"), Err(IdError::BadChar));
        assert_eq!(
            CustomerId::parse("ana@example.com").unwrap().as_str(),
            "ana@example.com"
        );
    }

    #[test]
    fn a_campaign_experiment_id_holds_any_campaign_id() {
        let longest = "c".repeat(MAX_ID_LEN);
        let id = format!("{CAMPAIGN_EXPERIMENT_PREFIX}{longest}");
        assert_eq!(ExperimentId::parse(id.clone()).unwrap().as_str(), id);
        assert_eq!(
            ExperimentId::parse(format!("{id}c")),
            Err(IdError::TooLong {
                max: MAX_ID_LEN + CAMPAIGN_EXPERIMENT_PREFIX.len()
            })
        );
        assert_eq!(ExperimentId::parse("campaign:a b"), Err(IdError::BadChar));
        // Other experiment ids are ids.
        assert_eq!(
            ExperimentId::parse("p".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong { max: MAX_ID_LEN })
        );
        assert!(ExperimentId::parse("program").is_ok());
        assert!(ExperimentId::parse("campaign:").is_ok());
    }

    #[test]
    fn channels_round_trip_through_their_names() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("fax"), None);
    }

    #[test]
    fn currency_is_three_upper_case_letters() {
        assert!(Currency::parse("BRL").is_ok());
        assert!(Currency::parse("brl").is_err());
        assert!(Currency::parse("BRLX").is_err());
    }
}
