//! The requests and answers of the use cases, as clients send and see them, and the parsing
//! that turns raw requests into core types while collecting every problem at once.

use crate::error::{AppError, FieldProblem};
use crate::store::RedemptionState;
use chrono::{DateTime, NaiveDate, Utc};
use kembali_core::ids::{
    Category, Channel, Currency, CustomerId, IdError, LineId, OrderId, PartnerId, RedemptionId,
    ReturnId, Segment, Sku, StoreId, Tag,
};
use kembali_core::limits::{
    MAX_LINES_PER_ORDER, MAX_QUANTITY, MAX_RETURN_LINES, MAX_TAGS, MAX_TEXT_LEN,
    MAX_UNIT_PRICE_MINOR,
};
use kembali_core::money::MAX_AMOUNT_MINOR;
use kembali_core::order::{Order, OrderLine};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::ToSchema;

/// Collects field problems while parsing a request.
#[derive(Default)]
pub struct Problems(Vec<FieldProblem>);

impl Problems {
    pub fn push(&mut self, field: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0.push(FieldProblem::new(field, code, message));
    }

    /// Parses an identifier, recording a problem under `field` if it is not one.
    pub fn id<T>(
        &mut self,
        field: impl Into<String>,
        parse: impl FnOnce() -> Result<T, IdError>,
    ) -> Option<T> {
        match parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(field, "invalid_id", e.to_string());
                None
            }
        }
    }

    pub fn amount(
        &mut self,
        field: impl Into<String>,
        value: i64,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            self.push(
                field,
                "out_of_range",
                format!("must be between {min} and {max}"),
            );
            None
        }
    }

    pub fn text(&mut self, field: &str, value: Option<String>) -> Option<String> {
        match value {
            Some(v) if v.chars().count() > MAX_TEXT_LEN => {
                self.push(
                    field,
                    "too_long",
                    format!("must be at most {MAX_TEXT_LEN} characters"),
                );
                None
            }
            Some(v) if v.chars().any(char::is_control) => {
                self.push(field, "invalid_text", "must not contain control characters");
                None
            }
            v => v,
        }
    }

    pub fn finish<T>(self, value: Option<T>) -> Result<T, AppError> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(AppError::Invalid(self.0)),
        }
    }
}

// ---------------------------------------------------------------- customers

/// `PUT /v1/customers/{customer_id}`: the customer's profile, replaced as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerProfileRequest {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<NaiveDate>,
    #[serde(default)]
    pub segments: Vec<String>,
}

/// A customer's profile as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CustomerView {
    pub customer_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub segments: Vec<String>,
    pub created_at: DateTime<Utc>,
}

pub struct CustomerProfile {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub segments: Vec<Segment>,
}

impl CustomerProfileRequest {
    pub fn parse(self) -> Result<CustomerProfile, AppError> {
        let mut p = Problems::default();
        let email = p.text("email", self.email);
        if let Some(e) = &email {
            if !e.contains('@') {
                p.push("email", "invalid_email", "must be an email address");
            }
        }
        let phone = p.text("phone", self.phone);
        if self.segments.len() > MAX_TAGS {
            p.push(
                "segments",
                "too_many",
                format!("at most {MAX_TAGS} segments"),
            );
        }
        let segments: Vec<Segment> = self
            .segments
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| p.id(format!("segments[{i}]"), || Segment::parse(s)))
            .collect();
        p.finish(Some(CustomerProfile {
            email,
            phone,
            birthday: self.birthday,
            segments,
        }))
    }
}

// ---------------------------------------------------------------- orders

/// `POST /v1/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The channel's own order id; with the channel, it makes the order idempotent.
    pub order_id: String,
    /// Required for admin keys; a channel key's own channel otherwise (and must match if given).
    #[schema(value_type = Option<String>, example = "web")]
    pub channel: Option<Channel>,
    /// The physical store or partner merchant; a channel key bound to a store supplies it.
    pub store_id: Option<String>,
    pub customer_id: String,
    /// Must be the program's currency.
    pub currency: String,
    /// When the sale happened at the till. Campaign windows, birthdays and cap periods are
    /// judged at this instant (or now, if absent or later than now); the return window and
    /// expiry date from ingestion.
    pub placed_at: Option<DateTime<Utc>>,
    pub lines: Vec<OrderLineRequest>,
    /// A captured (or held, then captured in full) redemption that paid part of this order.
    pub redemption_id: Option<String>,
    /// The partner merchant the sale was made with (campaigns may target partners).
    pub partner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    pub line_id: String,
    pub sku: String,
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub quantity: i64,
    pub unit_price_minor: i64,
    #[serde(default)]
    pub discount_minor: i64,
}

/// An order parsed and checked, ready for the use case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostOrder {
    pub order: Order,
    pub placed_at: Option<DateTime<Utc>>,
    pub redemption_id: Option<RedemptionId>,
    /// Left out of the request hash when absent, so orders hashed before partners existed
    /// still replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<PartnerId>,
}

/// Who is calling, as far as a use case cares: the channel and store a channel key is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    pub channel: Option<Channel>,
    pub store_id: Option<StoreId>,
}

impl OrderRequest {
    pub fn parse(self, caller: &Caller) -> Result<PostOrder, AppError> {
        let mut p = Problems::default();
        let order_id = p.id("order_id", || OrderId::parse(self.order_id));
        let customer_id = p.id("customer_id", || CustomerId::parse(self.customer_id));
        let currency = match Currency::parse(self.currency) {
            Ok(c) => Some(c),
            Err(m) => {
                p.push("currency", "invalid_currency", m);
                None
            }
        };
        let channel = resolve_channel(&mut p, self.channel, caller);
        let store_id = resolve_store(&mut p, self.store_id, caller);
        let redemption_id = self
            .redemption_id
            .and_then(|r| p.id("redemption_id", || RedemptionId::parse(r)));
        let partner_id = self
            .partner_id
            .and_then(|r| p.id("partner_id", || PartnerId::parse(r)));
        if self.lines.is_empty() {
            p.push("lines", "empty", "an order has at least one line");
        }
        if self.lines.len() > MAX_LINES_PER_ORDER {
            p.push(
                "lines",
                "too_many",
                format!("at most {MAX_LINES_PER_ORDER} lines"),
            );
        }
        let mut seen = HashSet::new();
        let lines: Vec<OrderLine> = self
            .lines
            .into_iter()
            .take(MAX_LINES_PER_ORDER)
            .enumerate()
            .filter_map(|(i, l)| {
                if !seen.insert(l.line_id.clone()) {
                    p.push(
                        format!("lines[{i}].line_id"),
                        "duplicate",
                        "line ids must be unique in an order",
                    );
                }
                parse_line(&mut p, i, l)
            })
            .collect();
        let ok = (|| {
            Some(PostOrder {
                order: Order {
                    channel: channel?,
                    store_id,
                    order_id: order_id?,
                    customer_id: customer_id?,
                    currency: currency?,
                    lines,
                },
                placed_at: self.placed_at,
                redemption_id,
                partner_id,
            })
        })();
        p.finish(ok)
    }
}

fn resolve_channel(p: &mut Problems, given: Option<Channel>, caller: &Caller) -> Option<Channel> {
    match (given, caller.channel) {
        (Some(g), Some(bound)) if g != bound => {
            p.push(
                "channel",
                "channel_mismatch",
                format!("this key may only act on channel {bound}"),
            );
            None
        }
        (Some(g), _) => Some(g),
        (None, Some(bound)) => Some(bound),
        (None, None) => {
            p.push("channel", "required", "channel is required");
            None
        }
    }
}

fn resolve_store(p: &mut Problems, given: Option<String>, caller: &Caller) -> Option<StoreId> {
    let given = given.and_then(|s| p.id("store_id", || StoreId::parse(s)));
    match (given, &caller.store_id) {
        (Some(g), Some(bound)) if &g != bound => {
            p.push(
                "store_id",
                "store_mismatch",
                format!("this key may only act for store {bound}"),
            );
            None
        }
        (Some(g), _) => Some(g),
        (None, bound) => bound.clone(),
    }
}

fn parse_line(p: &mut Problems, i: usize, l: OrderLineRequest) -> Option<OrderLine> {
    let f = |name: &str| format!("lines[{i}].{name}");
    let line_id = p.id(f("line_id"), || LineId::parse(l.line_id));
    let sku = p.id(f("sku"), || Sku::parse(l.sku));
    let category = p.id(f("category"), || Category::parse(l.category));
    if l.tags.len() > MAX_TAGS {
        p.push(f("tags"), "too_many", format!("at most {MAX_TAGS} tags"));
    }
    let tags: Vec<Tag> = l
        .tags
        .into_iter()
        .take(MAX_TAGS)
        .enumerate()
        .filter_map(|(t, tag)| p.id(format!("lines[{i}].tags[{t}]"), || Tag::parse(tag)))
        .collect();
    let quantity = p.amount(f("quantity"), l.quantity, 1, MAX_QUANTITY);
    let price = p.amount(
        f("unit_price_minor"),
        l.unit_price_minor,
        0,
        MAX_UNIT_PRICE_MINOR,
    );
    let discount = p.amount(f("discount_minor"), l.discount_minor, 0, i64::MAX);
    if let (Some(q), Some(pr), Some(d)) = (quantity, price, discount) {
        if d > q * pr {
            p.push(
                f("discount_minor"),
                "discount_exceeds_line",
                "the discount exceeds quantity × unit price",
            );
            return None;
        }
    }
    Some(OrderLine {
        line_id: line_id?,
        sku: sku?,
        category: category?,
        tags,
        quantity: quantity?,
        unit_price_minor: price?,
        discount_minor: discount?,
    })
}

/// The cashback of one line, as the order's answer shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LineCashbackView {
    pub line_id: String,
    pub net_minor: i64,
    pub redeemed_minor: i64,
    pub eligible_minor: i64,
    pub cashback_minor: i64,
    /// A sentence for the customer: which rule, what rate, on what amount.
    pub explanation: String,
    /// The same, structured: every rule that contributed.
    pub rules: Vec<RuleView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleView {
    /// `base_rate` or the campaign's id.
    pub rule: String,
    pub rate_bp: u32,
    pub on_minor: i64,
    /// The campaign version (absent for the base rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The campaign's part of the line's cashback (absent for the base rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
}

impl From<&kembali_core::cashback::LineCashback> for LineCashbackView {
    fn from(l: &kembali_core::cashback::LineCashback) -> Self {
        LineCashbackView {
            line_id: l.line_id.to_string(),
            net_minor: l.net_minor,
            redeemed_minor: l.redeemed_minor,
            eligible_minor: l.net_minor - l.redeemed_minor,
            cashback_minor: l.cashback_minor,
            explanation: l.explanation.clone(),
            rules: l.rules.iter().map(RuleView::from).collect(),
        }
    }
}

impl From<&kembali_core::cashback::RuleApplied> for RuleView {
    fn from(r: &kembali_core::cashback::RuleApplied) -> Self {
        RuleView::from(r.clone())
    }
}

impl From<kembali_core::cashback::RuleApplied> for RuleView {
    fn from(r: kembali_core::cashback::RuleApplied) -> Self {
        RuleView {
            rule: r.rule,
            rate_bp: r.rate_bp.0,
            on_minor: r.on_minor,
            version: r.version,
            amount_minor: r.amount_minor,
        }
    }
}

/// The answer to `POST /v1/orders`, returned again, unchanged, to every replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderReceipt {
    pub order_id: String,
    #[schema(value_type = String, example = "store")]
    pub channel: Channel,
    pub store_id: Option<String>,
    pub customer_id: String,
    pub currency: String,
    pub total_minor: i64,
    pub redeemed_minor: i64,
    pub cashback_minor: i64,
    pub lines: Vec<LineCashbackView>,
    /// What each campaign (and the base rate) paid on the order, with its explanation.
    #[serde(default)]
    pub campaigns: Vec<CampaignOutcomeView>,
    pub lot_id: Option<i64>,
    /// When the cashback becomes spendable (after the return window); absent if none earned.
    pub available_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- returns

/// `POST /v1/orders/{order_id}/returns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// Unique within the order; a retry with the same id and body returns the first answer.
    pub return_id: String,
    pub lines: Vec<ReturnLineRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineRequest {
    pub line_id: String,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostReturn {
    pub return_id: ReturnId,
    /// `None` means every unit not yet returned (a cancel).
    pub lines: Option<Vec<(LineId, i64)>>,
}

impl ReturnRequest {
    pub fn parse(self) -> Result<PostReturn, AppError> {
        let mut p = Problems::default();
        let return_id = p.id("return_id", || ReturnId::parse(self.return_id));
        if self.lines.is_empty() {
            p.push("lines", "empty", "a return names at least one line");
        }
        if self.lines.len() > MAX_RETURN_LINES {
            p.push(
                "lines",
                "too_many",
                format!("at most {MAX_RETURN_LINES} lines"),
            );
        }
        let mut seen = HashSet::new();
        let lines: Vec<(LineId, i64)> = self
            .lines
            .into_iter()
            .take(MAX_RETURN_LINES)
            .enumerate()
            .filter_map(|(i, l)| {
                if !seen.insert(l.line_id.clone()) {
                    p.push(
                        format!("lines[{i}].line_id"),
                        "duplicate",
                        "name each line once",
                    );
                }
                let id = p.id(format!("lines[{i}].line_id"), || LineId::parse(l.line_id));
                let q = p.amount(format!("lines[{i}].quantity"), l.quantity, 1, MAX_QUANTITY);
                Some((id?, q?))
            })
            .collect();
        let ok = return_id.map(|return_id| PostReturn {
            return_id,
            lines: Some(lines),
        });
        p.finish(ok)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReturnLineView {
    pub line_id: String,
    pub quantity: i64,
    /// Cashback this return takes back for the line.
    pub clawed_back_minor: i64,
    /// Redeemed cashback that had paid for these units, given back to its lots.
    pub restored_minor: i64,
}

/// The answer to a return or cancel, returned again to every replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReturnReceipt {
    pub order_id: String,
    #[schema(value_type = String, example = "store")]
    pub channel: Channel,
    pub return_id: String,
    pub customer_id: String,
    pub lines: Vec<ReturnLineView>,
    /// Total cashback taken back = from the lot + debt created + forfeited.
    pub clawed_back_minor: i64,
    pub taken_from_lot_minor: i64,
    pub debt_created_minor: i64,
    /// Absorbed by the program under the `forfeit` policy.
    pub forfeited_minor: i64,
    pub restored_minor: i64,
    pub explanation: String,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------- redemptions

/// `POST /v1/redemptions/quote`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    pub customer_id: String,
    /// The order's total before cashback.
    pub order_total_minor: i64,
    pub currency: String,
}

/// One reason the quote is not higher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuoteLimit {
    /// `available_balance`, `max_share_of_order`, `min_order_total`.
    pub code: String,
    pub limit_minor: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    pub customer_id: String,
    pub currency: String,
    pub order_total_minor: i64,
    pub available_minor: i64,
    /// How much may be used now on this order.
    pub max_redeemable_minor: i64,
    /// The rules that bind, tightest first.
    pub limits: Vec<QuoteLimit>,
}

/// `POST /v1/redemptions`: a hold, or a one-step redeem with `"capture": true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedemptionRequest {
    /// The client's id for the redemption; a retry with the same id and body is answered
    /// with the first answer. Generated when absent.
    pub redemption_id: Option<String>,
    pub customer_id: String,
    pub amount_minor: i64,
    pub order_total_minor: i64,
    pub currency: String,
    #[schema(value_type = Option<String>, example = "store")]
    pub channel: Option<Channel>,
    pub store_id: Option<String>,
    #[serde(default)]
    pub capture: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostRedemption {
    pub redemption_id: RedemptionId,
    pub customer_id: CustomerId,
    pub amount_minor: i64,
    pub order_total_minor: i64,
    pub currency: Currency,
    pub channel: Channel,
    pub store_id: Option<StoreId>,
    pub capture: bool,
}

impl RedemptionRequest {
    /// `generated_id` is used when the client sent none.
    pub fn parse(
        self,
        caller: &Caller,
        generated_id: impl FnOnce() -> String,
    ) -> Result<PostRedemption, AppError> {
        let mut p = Problems::default();
        let redemption_id = p.id("redemption_id", || {
            RedemptionId::parse(self.redemption_id.unwrap_or_else(generated_id))
        });
        let customer_id = p.id("customer_id", || CustomerId::parse(self.customer_id));
        let amount = p.amount("amount_minor", self.amount_minor, 1, MAX_AMOUNT_MINOR);
        let total = p.amount(
            "order_total_minor",
            self.order_total_minor,
            1,
            MAX_AMOUNT_MINOR,
        );
        let currency = match Currency::parse(self.currency) {
            Ok(c) => Some(c),
            Err(m) => {
                p.push("currency", "invalid_currency", m);
                None
            }
        };
        if let (Some(a), Some(t)) = (amount, total) {
            if a > t {
                p.push(
                    "amount_minor",
                    "exceeds_order_total",
                    "cannot redeem more than the order total",
                );
            }
        }
        let channel = resolve_channel(&mut p, self.channel, caller);
        let store_id = resolve_store(&mut p, self.store_id, caller);
        let ok = (|| {
            Some(PostRedemption {
                redemption_id: redemption_id?,
                customer_id: customer_id?,
                amount_minor: amount?,
                order_total_minor: total?,
                currency: currency?,
                channel: channel?,
                store_id,
                capture: self.capture,
            })
        })();
        p.finish(ok)
    }
}

/// `POST /v1/redemptions/{id}/capture`. Without an amount, the whole hold is captured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    pub amount_minor: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AllocationView {
    pub lot_id: i64,
    pub lot_expires_at: DateTime<Utc>,
    pub held_minor: i64,
    pub captured_minor: i64,
    pub restored_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RedemptionView {
    pub redemption_id: String,
    pub customer_id: String,
    #[schema(value_type = String, example = "store")]
    pub channel: Channel,
    pub store_id: Option<String>,
    pub state: RedemptionState,
    pub currency: String,
    /// The amount held (authorized).
    pub amount_minor: i64,
    pub captured_minor: i64,
    pub order_total_minor: i64,
    pub created_at: DateTime<Utc>,
    /// When an uncaptured hold lapses.
    pub expires_at: DateTime<Utc>,
    /// The order this redemption paid for, once posted.
    pub order_id: Option<String>,
    /// Which lots paid, soonest-expiring first.
    pub allocations: Vec<AllocationView>,
}

// ---------------------------------------------------------------- wallet and statement

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExpirationView {
    pub lot_id: i64,
    pub amount_minor: i64,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MaturationView {
    pub lot_id: i64,
    pub amount_minor: i64,
    pub available_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WalletView {
    pub customer_id: String,
    pub currency: String,
    /// Spendable now, on any channel.
    pub available_minor: i64,
    /// Earned, inside the return window.
    pub pending_minor: i64,
    /// Authorized by holds not yet captured.
    pub held_minor: i64,
    /// Clawback still owed, repaid from the next earnings as they mature.
    pub debt_minor: i64,
    /// Soonest first.
    pub next_expirations: Vec<ExpirationView>,
    /// Pending lots, soonest first.
    pub next_availability: Vec<MaturationView>,
    pub as_of: DateTime<Utc>,
}

/// How an entry moved the customer's balances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalanceDelta {
    pub pending_minor: i64,
    pub available_minor: i64,
    pub held_minor: i64,
    pub debt_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatementEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// earn, mature, hold, capture, release, expire, clawback, debt_created, debt_repaid, restore.
    pub kind: String,
    pub explanation: String,
    pub delta: BalanceDelta,
    #[schema(value_type = Option<String>)]
    pub channel: Option<Channel>,
    pub order_id: Option<String>,
    pub redemption_id: Option<String>,
    pub return_id: Option<String>,
    pub lot_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatementPage {
    pub customer_id: String,
    pub currency: String,
    /// Newest first.
    pub entries: Vec<StatementEntry>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------- program and events

/// `PUT /v1/program`: the fields given replace the current ones; absent fields keep theirs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgramRequest {
    pub currency: Option<String>,
    pub base_rate_bp: Option<u32>,
    pub pending_days: Option<u32>,
    pub expiry_days: Option<u32>,
    pub expiry_warning_days: Option<u32>,
    pub max_redeem_share_bp: Option<u32>,
    pub min_order_total_to_redeem_minor: Option<i64>,
    pub hold_ttl_secs: Option<u32>,
    /// `debt` or `forfeit`.
    #[schema(value_type = Option<String>, example = "debt")]
    pub clawback_policy: Option<kembali_core::program::ClawbackPolicy>,
    pub restore_grace_days: Option<u32>,
    /// IANA zone of campaign windows, birthdays, cap periods and cohorts.
    #[schema(example = "America/Sao_Paulo")]
    pub time_zone: Option<String>,
    /// Share of customers held out of the whole program (they earn nothing), in basis points.
    pub holdout_share_bp: Option<u32>,
    /// Salt of the program holdout's assignment.
    pub holdout_salt: Option<String>,
    /// Gross margin on net revenue (for predicted value and ROI), in basis points.
    pub gross_margin_bp: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProgramView {
    pub currency: String,
    pub base_rate_bp: u32,
    pub pending_days: u32,
    pub expiry_days: u32,
    pub expiry_warning_days: u32,
    pub max_redeem_share_bp: u32,
    pub min_order_total_to_redeem_minor: i64,
    pub hold_ttl_secs: u32,
    #[schema(value_type = String)]
    pub clawback_policy: kembali_core::program::ClawbackPolicy,
    pub restore_grace_days: u32,
    pub time_zone: String,
    pub holdout_share_bp: u32,
    pub holdout_salt: String,
    pub gross_margin_bp: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `cashback.expiring_soon`, `cashback.expired`, `cashback.available`.
    pub kind: String,
    pub customer_id: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    pub events: Vec<EventView>,
    pub next_cursor: Option<String>,
}

/// Program-wide totals from the ledger, for finance and for the invariant checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TotalsView {
    pub currency: String,
    pub earned_minor: i64,
    pub pending_minor: i64,
    pub available_minor: i64,
    pub held_minor: i64,
    pub redeemed_minor: i64,
    pub expired_minor: i64,
    pub clawed_back_minor: i64,
    pub debt_outstanding_minor: i64,
    /// earned = pending + available + held + redeemed + expired + clawed back.
    pub balanced: bool,
}

// ---------------------------------------------------------------- campaigns

/// `POST /v1/campaigns`: a new campaign and its first version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignCreateRequest {
    /// Stable across versions; letters, digits, `-`, `_`, `.`, `:` (e.g. `black-friday-2026`).
    pub id: String,
    /// The definition: `name`, `window`, `conditions`, `reward`, `caps`, `stacking`,
    /// `funding`, `holdout` (see the campaign guide in the README).
    #[schema(value_type = Object)]
    pub definition: kembali_core::campaign::RawCampaign,
}

/// `PUT /v1/campaigns/{campaign_id}`: a new version with this definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignUpdateRequest {
    #[schema(value_type = Object)]
    pub definition: kembali_core::campaign::RawCampaign,
    /// If given, the change is refused (409) unless this is still the current version.
    pub expected_version: Option<u32>,
}

/// One immutable version of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CampaignVersionView {
    pub version: u32,
    pub status: crate::store::CampaignStatus,
    /// `create`, `update`, `pause`, `resume` or `end`.
    pub action: crate::store::CampaignAction,
    #[schema(value_type = Object)]
    pub definition: kembali_core::campaign::RawCampaign,
    /// JSON pointers of the definition's fields that changed from the version before.
    pub changes: Vec<String>,
    /// The id of the API key that made the version.
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub status: crate::store::CampaignStatus,
    /// The current version.
    pub version: u32,
    #[schema(value_type = Object)]
    pub definition: kembali_core::campaign::RawCampaign,
    /// What orders have drawn from the budget so far (cashback as earned).
    pub budget_spent_minor: i64,
    /// Budget left; absent when the campaign has no budget.
    pub budget_remaining_minor: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every version, oldest first (on `GET /v1/campaigns/{campaign_id}` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<CampaignVersionView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignView>,
}

/// What one campaign (or the base rate) paid on an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CampaignOutcomeView {
    /// `base_rate` for the program's base rate.
    pub campaign_id: String,
    /// 0 for the base rate.
    pub version: u32,
    /// Absent for a fixed amount.
    pub rate_bp: Option<u32>,
    pub eligible_minor: i64,
    /// Before caps.
    pub uncapped_minor: i64,
    pub amount_minor: i64,
    /// Caps that reduced the amount, in the order they apply: `eligible_amount`,
    /// `per_order`, `customer_day`, `customer_week`, `customer_month`, `customer_campaign`,
    /// `budget`.
    #[schema(value_type = Vec<String>)]
    pub capped_by: Vec<kembali_core::campaign::CapKind>,
    /// `{"payer": "retailer"}` or `{"payer": "partner", "partner_id", "partner_share_bp"}`.
    #[schema(value_type = Object)]
    pub funding: kembali_core::campaign::Funding,
    pub explanation: String,
    /// Present (true) when the customer is in the campaign's holdout: it paid nothing, and
    /// `uncapped_minor` is what it would have paid before caps.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held_out: bool,
}

impl From<&kembali_core::campaign::CampaignOutcome> for CampaignOutcomeView {
    fn from(o: &kembali_core::campaign::CampaignOutcome) -> Self {
        CampaignOutcomeView::from(o.clone())
    }
}

impl From<kembali_core::campaign::CampaignOutcome> for CampaignOutcomeView {
    fn from(o: kembali_core::campaign::CampaignOutcome) -> Self {
        CampaignOutcomeView {
            campaign_id: o.campaign_id.into(),
            version: o.version,
            rate_bp: o.rate_bp.map(|r| r.0),
            eligible_minor: o.eligible_minor,
            uncapped_minor: o.uncapped_minor,
            amount_minor: o.amount_minor,
            capped_by: o.capped_by,
            funding: o.funding,
            explanation: o.explanation,
            held_out: o.held_out,
        }
    }
}

/// The customer as a preview should see them; absent fields come from the stored customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewCustomer {
    pub birthday: Option<NaiveDate>,
    pub segments: Option<Vec<String>>,
    /// Whether this order is the customer's first purchase.
    pub first_purchase: Option<bool>,
    /// The customer's favourite category (for favourite-category rewards, any lookback).
    pub favourite_category: Option<String>,
}

/// `POST /v1/campaigns/preview`: evaluate an order under the active campaigns and/or
/// drafts, changing nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// As `POST /v1/orders` takes it (`redemption_id` is ignored; use `redeemed_minor`).
    pub order: OrderRequest,
    /// The part of the order paid with cashback (earns nothing).
    #[serde(default)]
    pub redeemed_minor: i64,
    #[serde(default)]
    pub customer: PreviewCustomer,
    /// Draft campaigns; a draft with a stored campaign's id replaces it in the preview.
    #[serde(default)]
    pub campaigns: Vec<CampaignCreateRequest>,
    /// Whether the stored active campaigns take part (default true).
    pub include_active: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreviewView {
    pub currency: String,
    pub total_minor: i64,
    pub cashback_minor: i64,
    pub lines: Vec<LineCashbackView>,
    pub campaigns: Vec<CampaignOutcomeView>,
}
