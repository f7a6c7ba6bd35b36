//! A test clock, an engine over the store under test, and short ways to say what a scenario
//! does ("web order O1 for ana: electronics 150,00 and book 50,00").

use chrono::{DateTime, Duration, TimeZone, Utc};
use kembali_app::clock::TestClock;
use kembali_app::model::*;
use kembali_app::store::Store;
use kembali_app::store::{CampaignAction, CampaignStatus, CampaignVersionRecord, CustomerRecord};
use kembali_app::{AppResult, Engine};
use kembali_core::campaign::RawCampaign;
use kembali_core::ids::CampaignId;
use kembali_core::ids::{Channel, CustomerId, OrderId, RedemptionId};
use kembali_core::ledger::WalletBalances;
use std::sync::Arc;

pub struct Harness<S: Store> {
    pub engine: Engine<S>,
    pub clock: Arc<TestClock>,
    pub start: DateTime<Utc>,
}

/// 5 January 2026, noon UTC: day 0 of every scenario.
pub fn day_zero() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap()
}

pub fn cid(s: &str) -> CustomerId {
    CustomerId::parse(s).unwrap()
}

/// A new customer `id`, known by nothing but its id, as a store's row.
pub fn customer_record(id: &str) -> CustomerRecord {
    CustomerRecord {
        id: cid(id),
        email: None,
        phone: None,
        birthday: None,
        segments: vec![],
        created_at: Utc::now(),
        balances: WalletBalances::default(),
    }
}

impl<S: Store> Harness<S> {
    pub async fn new(store: S) -> Self {
        let clock = Arc::new(TestClock::new(day_zero()));
        let engine = Engine::new(Arc::new(store), clock.clone());
        engine.init().await.expect("init");
        Harness {
            engine,
            clock,
            start: day_zero(),
        }
    }

    pub fn day(&self) -> i64 {
        (self.clock_now() - self.start).num_days()
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        use kembali_app::clock::Clock;
        self.clock.now()
    }

    /// Moves the clock to `day` (noon) and settles everything due, like the test-clock endpoint.
    pub async fn to_day(&self, day: i64) {
        let target = self.start + Duration::days(day);
        let by = target - self.clock_now();
        assert!(by >= Duration::zero(), "time only moves forward");
        self.advance(by).await;
    }

    pub async fn advance(&self, by: Duration) {
        let now = self.clock.advance(by);
        self.engine.run_due_work(now).await.expect("due work");
    }

    pub async fn set_program(&self, req: ProgramRequest) {
        self.engine.update_program(req).await.expect("program");
    }

    /// Posts an order of `(line id, category, quantity, unit price)` lines.
    pub async fn order(
        &self,
        channel: Channel,
        store: Option<&str>,
        order_id: &str,
        customer: &str,
        lines: &[(&str, &str, i64, i64)],
        redemption: Option<&str>,
    ) -> AppResult<OrderReceipt> {
        let req = order_request(channel, store, order_id, customer, lines, redemption);
        let caller = Caller::default();
        self.engine.post_order(req.parse(&caller)?, None).await
    }

    pub async fn ret(
        &self,
        order_id: &str,
        return_id: &str,
        lines: &[(&str, i64)],
    ) -> AppResult<ReturnReceipt> {
        let req = ReturnRequest {
            return_id: return_id.into(),
            lines: lines
                .iter()
                .map(|(l, q)| ReturnLineRequest {
                    line_id: (*l).into(),
                    quantity: *q,
                })
                .collect(),
        };
        self.engine
            .post_return(OrderId::parse(order_id).unwrap(), None, req.parse()?, None)
            .await
    }

    pub async fn cancel(&self, order_id: &str) -> AppResult<ReturnReceipt> {
        self.engine
            .cancel_order(OrderId::parse(order_id).unwrap(), None, None)
            .await
    }

    pub async fn hold(
        &self,
        id: &str,
        customer: &str,
        amount: i64,
        order_total: i64,
        capture: bool,
    ) -> AppResult<RedemptionView> {
        let req = RedemptionRequest {
            redemption_id: Some(id.into()),
            customer_id: customer.into(),
            amount_minor: amount,
            order_total_minor: order_total,
            currency: "BRL".into(),
            channel: Some(Channel::Store),
            store_id: Some("sp-01".into()),
            capture,
        };
        let parsed = req.parse(&Caller::default(), || unreachable!("id given"))?;
        self.engine.redeem(parsed, None).await
    }

    pub async fn capture(&self, id: &str, amount: Option<i64>) -> AppResult<RedemptionView> {
        self.engine
            .capture(
                RedemptionId::parse(id).unwrap(),
                amount,
                Caller::default(),
                None,
            )
            .await
    }

    pub async fn void(&self, id: &str) -> AppResult<RedemptionView> {
        self.engine
            .void(RedemptionId::parse(id).unwrap(), Caller::default(), None)
            .await
    }

    pub async fn wallet(&self, customer: &str) -> WalletView {
        self.engine.wallet(cid(customer)).await.expect("wallet")
    }

    /// (available, pending, held, debt) in minor units.
    pub async fn balances(&self, customer: &str) -> (i64, i64, i64, i64) {
        let w = self.wallet(customer).await;
        (
            w.available_minor,
            w.pending_minor,
            w.held_minor,
            w.debt_minor,
        )
    }

    /// Every entry of the customer's statement, oldest first, one line each.
    pub async fn statement_text(&self, customer: &str) -> String {
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .engine
                .statement(cid(customer), cursor, Some(2))
                .await
                .expect("statement");
            entries.extend(page.entries);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        entries.reverse();
        entries
            .iter()
            .map(|e| {
                let d = &e.delta;
                format!(
                    "day {:>3} {:<12} pend {:>+5} avail {:>+5} held {:>+5} debt {:>+5} | {}",
                    (e.at - self.start).num_days(),
                    e.kind,
                    d.pending_minor,
                    d.available_minor,
                    d.held_minor,
                    d.debt_minor,
                    e.explanation
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks every invariant the store can show: each wallet's cache against its postings and
    /// lots, no negative balance, and the program's totals balancing.
    pub async fn assert_invariants(&self, customers: &[&str]) {
        for c in customers {
            let breaches = self.engine.check_customer(cid(c)).await.expect("check");
            assert!(breaches.is_empty(), "invariants broken: {breaches:?}");
        }
        let totals = self.engine.totals().await.expect("totals");
        assert!(totals.balanced, "program totals do not balance: {totals:?}");
    }
}

pub fn order_request(
    channel: Channel,
    store: Option<&str>,
    order_id: &str,
    customer: &str,
    lines: &[(&str, &str, i64, i64)],
    redemption: Option<&str>,
) -> OrderRequest {
    OrderRequest {
        order_id: order_id.into(),
        channel: Some(channel),
        store_id: store.map(Into::into),
        customer_id: customer.into(),
        currency: "BRL".into(),
        placed_at: None,
        lines: lines
            .iter()
            .map(|(id, category, qty, price)| OrderLineRequest {
                line_id: (*id).into(),
                sku: format!("sku-{category}"),
                category: (*category).into(),
                tags: vec![],
                quantity: *qty,
                unit_price_minor: *price,
                discount_minor: 0,
            })
            .collect(),
        redemption_id: redemption.map(Into::into),
        partner_id: None,
    }
}

/// Version `version` of `campaign`: 10 % on every order of 2026, stacked on the base rate,
/// with `budget_minor` as its budget.
pub fn campaign_version(
    campaign: &str,
    version: u32,
    action: CampaignAction,
    status: CampaignStatus,
    budget_minor: Option<i64>,
    at: DateTime<Utc>,
) -> CampaignVersionRecord {
    // 10 % on every order of 2026, stacked on the base rate.
    let definition: RawCampaign = serde_json::from_value(serde_json::json!({
        "name": format!("Promo {campaign}"),
        "window": {"starts_on": "2026-01-01", "ends_on": "2026-12-31"},
        "reward": {"kind": "percent", "rate_bp": 1000},
        "caps": {"budget_minor": budget_minor},
        "stacking": {"mode": "stackable"}
    }))
    .expect("a campaign definition");
    CampaignVersionRecord {
        campaign_id: CampaignId::parse(campaign).unwrap(),
        version,
        status,
        action,
        definition,
        changes: if version == 1 {
            vec![]
        } else {
            vec!["/caps/budget_minor".into()]
        },
        actor: "key-admin".into(),
        at,
    }
}
