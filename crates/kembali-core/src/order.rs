//! Orders as the engine sees them once parsed: lines with their net amounts.

use crate::ids::{Category, Channel, Currency, CustomerId, LineId, OrderId, Sku, StoreId, Tag};
use serde::{Deserialize, Serialize};

/// One line of an order, already parsed and checked against the limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub line_id: LineId,
    pub sku: Sku,
    pub category: Category,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub quantity: i64,
    pub unit_price_minor: i64,
    #[serde(default)]
    pub discount_minor: i64,
}

impl OrderLine {
    /// What the customer pays for the line before any cashback: quantity × unit price − discount.
    /// The limits keep this inside i64; parsing guarantees discount ≤ gross.
    pub fn net_minor(&self) -> i64 {
        self.quantity * self.unit_price_minor - self.discount_minor
    }
}

/// An order as posted by a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub channel: Channel,
    pub store_id: Option<StoreId>,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub lines: Vec<OrderLine>,
}

impl Order {
    pub fn total_minor(&self) -> i64 {
        self.lines.iter().map(OrderLine::net_minor).sum()
    }
}
