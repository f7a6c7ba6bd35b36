//! The moves every use case shares: journaling a balanced entry, giving money back to lots,
//! and settling a wallet's due work (maturation with debt repayment, lapses, warnings,
//! expiries) in the order it fell due.

use crate::error::{AppResult, StoreError};
use crate::store::{
    EntryRefs, EventRecord, JournalEntry, LotRecord, RedemptionRecord, RedemptionState, Tx,
};
use chrono::{DateTime, Duration, Utc};
use kembali_core::ids::CustomerId;
use kembali_core::ledger::{Account, Entry, EntryKind, WalletBalances};
use kembali_core::lots::LotState;
use kembali_core::money::format_minor;
use kembali_core::program::ProgramSettings;

/// What every job knows: the instant it runs at and the program's settings.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    pub settings: ProgramSettings,
}

impl Ctx {
    pub fn money(&self, amount_minor: i64) -> String {
        format_minor(self.settings.currency.as_str(), amount_minor)
    }
}

pub async fn load_ctx(tx: &mut dyn Tx, now: DateTime<Utc>) -> AppResult<Ctx> {
    let settings = tx.program(false).await?.unwrap_or_default();
    Ok(Ctx { now, settings })
}

/// Journals one balanced entry for `customer` and moves the cached balances with it.
/// Checks the entry balances before writing: an unbalanced entry is a bug, never stored.
pub async fn post(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    at: DateTime<Utc>,
    customer: &CustomerId,
    entry: Entry,
    refs: EntryRefs,
) -> AppResult<i64> {
    if !entry.is_balanced() {
        return Err(StoreError::Corrupt(format!("unbalanced {:?} entry", entry.kind)).into());
    }
    let delta = entry.wallet_delta();
    let seq = tx
        .append_entry(&JournalEntry {
            seq: 0,
            at,
            customer_id: customer.clone(),
            asset: ctx.settings.currency.as_str().to_string(),
            entry,
            refs,
        })
        .await?;
    if !delta.is_zero() {
        tx.add_balances(customer, &delta).await?;
    }
    Ok(seq)
}

/// Gives `amount_minor` back to a lot it came from (a released hold or a restored
/// redemption). A lot that expired meanwhile gets a grace expiry of `restore_grace_days`.
pub fn give_back(lot: &mut LotRecord, amount_minor: i64, ctx: &Ctx, at: DateTime<Utc>) {
    lot.lot.remaining_minor += amount_minor;
    if lot.lot.state == LotState::Expired || lot.lot.expires_at <= at {
        let grace = at + Duration::days(i64::from(ctx.settings.restore_grace_days));
        lot.lot.expires_at = lot.lot.expires_at.max(grace);
        lot.lot.state = LotState::Available;
        lot.expiry_warned = false;
    } else if lot.lot.state == LotState::ClawedBack {
        lot.lot.state = LotState::Available;
    }
}

/// Releases held amounts back to their lots (void, lapse, the uncaptured rest of a capture)
/// and journals one release entry.
pub async fn release(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    at: DateTime<Utc>,
    customer: &CustomerId,
    parts: &[(i64, i64)],
    explanation: String,
    refs: EntryRefs,
) -> AppResult<()> {
    let total: i64 = parts.iter().map(|(_, a)| a).sum();
    if total == 0 {
        return Ok(());
    }
    give_back_to_lots(tx, ctx, at, parts).await?;
    post(
        tx,
        ctx,
        at,
        customer,
        Entry::transfer(
            EntryKind::Release,
            Account::Held,
            Account::Available,
            total,
            explanation,
        ),
        refs,
    )
    .await?;
    Ok(())
}

/// `(lot id, amount)` pairs given back to their lots.
pub async fn give_back_to_lots(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    at: DateTime<Utc>,
    parts: &[(i64, i64)],
) -> AppResult<()> {
    let ids: Vec<i64> = parts
        .iter()
        .filter(|(_, a)| *a > 0)
        .map(|(id, _)| *id)
        .collect();
    let mut lots = tx.lots_by_id(&ids).await?;
    for (id, amount) in parts.iter().filter(|(_, a)| *a > 0) {
        let lot = lots
            .iter_mut()
            .find(|l| l.lot.id == *id)
            .ok_or_else(|| StoreError::Corrupt(format!("allocation names missing lot {id}")))?;
        give_back(lot, *amount, ctx, at);
    }
    for lot in &lots {
        tx.update_lot(lot).await?;
    }
    Ok(())
}

/// The customer account that holds what remains of a lot.
pub fn lot_account(lot: &LotRecord) -> Account {
    if lot.lot.state == LotState::Pending {
        Account::Pending
    } else {
        Account::Available
    }
}

/// " earned on web order O1", for explanations (empty for a lot without an order).
fn origin(lot: &LotRecord) -> String {
    lot.order
        .as_ref()
        .map(|o| format!(" earned on {} order {}", o.channel, o.order_id))
        .unwrap_or_default()
}

/// Loads a wallet's customer, open lots and holds, and says whether any work is due at `until`.
pub async fn wallet_due(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    customer: &CustomerId,
    until: DateTime<Utc>,
) -> AppResult<Option<(crate::store::CustomerRecord, bool)>> {
    let Some(c) = tx.customer(customer, false).await? else {
        return Ok(None);
    };
    let lots = tx.open_lots(customer).await?;
    let holds = tx.held_redemptions(customer).await?;
    let due = has_due_work(&lots, &holds, &ctx.settings, until);
    Ok(Some((c, due)))
}

enum Due {
    Mature(usize),
    Lapse(usize),
    Warn(usize),
    Expire(usize),
}

/// Settles everything due for one customer up to `until`, one event at a time in the order
/// it fell due, each at its own instant (so a clock jumped over months gives the same
/// ledger as a clock that ticked through them). The caller holds the customer's lock.
/// Returns the number of events processed.
pub async fn settle(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    customer: &CustomerId,
    until: DateTime<Utc>,
) -> AppResult<usize> {
    let warn = Duration::days(i64::from(ctx.settings.expiry_warning_days));
    let mut done = 0;
    // Bounded: every step closes a lot's pending state, a hold, a warning or a lot's
    // remainder, and each can happen once per lot or hold (grace re-opens only on release,
    // which this loop does for lapses, once per hold).
    loop {
        let mut lots = tx.open_lots(customer).await?;
        let holds: Vec<_> = tx
            .held_redemptions(customer)
            .await?
            .into_iter()
            .filter(|h| h.expires_at <= until)
            .collect();
        let mut next: Option<(DateTime<Utc>, u8, Due)> = None;
        let mut consider = |at: DateTime<Utc>, rank: u8, due: Due| {
            if at <= until && next.as_ref().is_none_or(|(t, r, _)| (at, rank) < (*t, *r)) {
                next = Some((at, rank, due));
            }
        };
        for (i, l) in lots.iter().enumerate() {
            if l.lot.state == LotState::Pending {
                consider(l.lot.available_at, 0, Due::Mature(i));
            }
            if ctx.settings.expiry_warning_days > 0 && !l.expiry_warned {
                consider(l.lot.expires_at - warn, 2, Due::Warn(i));
            }
            consider(l.lot.expires_at, 3, Due::Expire(i));
        }
        for (i, h) in holds.iter().enumerate() {
            consider(h.expires_at, 1, Due::Lapse(i));
        }
        let Some((at, _, due)) = next else {
            return Ok(done);
        };
        done += 1;
        match due {
            Due::Mature(i) => mature(tx, ctx, at, &mut lots[i]).await?,
            Due::Warn(i) => warn_expiry(tx, at, &mut lots[i]).await?,
            Due::Expire(i) => expire(tx, ctx, at, &mut lots[i]).await?,
            Due::Lapse(i) => {
                let mut hold = holds[i].clone();
                let explanation = format!(
                    "hold {} lapsed uncaptured: {} back to available",
                    hold.id,
                    ctx.money(hold.amount_minor)
                );
                end_hold(tx, ctx, at, &mut hold, RedemptionState::Lapsed, explanation).await?;
            }
        }
    }
}

async fn mature(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    at: DateTime<Utc>,
    lot: &mut LotRecord,
) -> AppResult<()> {
    let customer = tx
        .customer(&lot.customer_id, true)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("lot {} of missing customer", lot.lot.id)))?;
    let repay = customer
        .balances
        .debt_minor
        .min(lot.lot.remaining_minor)
        .max(0);
    let refs = EntryRefs {
        order: lot.order.clone(),
        lot_id: Some(lot.lot.id),
        ..EntryRefs::default()
    };
    let origin = origin(lot);
    if repay > 0 {
        let entry = Entry::transfer(
            EntryKind::DebtRepaid,
            Account::Pending,
            Account::ClawedBack,
            repay,
            format!(
                "{} of the cashback{origin} repays clawback debt",
                ctx.money(repay)
            ),
        )
        .and(Account::Debt, Account::DebtIssued, repay);
        post(tx, ctx, at, &lot.customer_id, entry, refs.clone()).await?;
    }
    let freed = lot.lot.remaining_minor - repay;
    if freed > 0 {
        let entry = Entry::transfer(
            EntryKind::Mature,
            Account::Pending,
            Account::Available,
            freed,
            format!("{} cashback{origin} is now available", ctx.money(freed)),
        );
        post(tx, ctx, at, &lot.customer_id, entry, refs).await?;
    }
    lot.lot.remaining_minor = freed;
    lot.lot.state = if freed > 0 {
        LotState::Available
    } else {
        LotState::ClawedBack
    };
    tx.update_lot(lot).await?;
    if freed > 0 {
        event(tx, at, "cashback.available", lot, freed).await?;
    }
    Ok(())
}

async fn warn_expiry(tx: &mut dyn Tx, at: DateTime<Utc>, lot: &mut LotRecord) -> AppResult<()> {
    lot.expiry_warned = true;
    tx.update_lot(lot).await?;
    event(
        tx,
        at,
        "cashback.expiring_soon",
        lot,
        lot.lot.remaining_minor,
    )
    .await
}

async fn expire(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    at: DateTime<Utc>,
    lot: &mut LotRecord,
) -> AppResult<()> {
    let amount = lot.lot.remaining_minor;
    let from = lot_account(lot);
    let origin = origin(lot);
    let entry = Entry::transfer(
        EntryKind::Expire,
        from,
        Account::Expired,
        amount,
        format!("{} cashback{origin} expired unused", ctx.money(amount)),
    );
    let refs = EntryRefs {
        order: lot.order.clone(),
        lot_id: Some(lot.lot.id),
        ..EntryRefs::default()
    };
    post(tx, ctx, at, &lot.customer_id, entry, refs).await?;
    lot.lot.remaining_minor = 0;
    lot.lot.state = LotState::Expired;
    tx.update_lot(lot).await?;
    event(tx, at, "cashback.expired", lot, amount).await
}

async fn event(
    tx: &mut dyn Tx,
    at: DateTime<Utc>,
    kind: &str,
    lot: &LotRecord,
    amount_minor: i64,
) -> AppResult<()> {
    tx.append_event(&EventRecord {
        seq: 0,
        at,
        kind: kind.to_string(),
        customer_id: Some(lot.customer_id.clone()),
        payload: serde_json::json!({
            "lot_id": lot.lot.id,
            "amount_minor": amount_minor,
            "available_at": lot.lot.available_at,
            "expires_at": lot.lot.expires_at,
        }),
    })
    .await?;
    Ok(())
}

/// Whether a customer has due work at `until` (so a read must settle first).
pub fn has_due_work(
    lots: &[LotRecord],
    holds: &[crate::store::RedemptionRecord],
    settings: &ProgramSettings,
    until: DateTime<Utc>,
) -> bool {
    let warn = Duration::days(i64::from(settings.expiry_warning_days));
    lots.iter().any(|l| {
        (l.lot.state == LotState::Pending && l.lot.available_at <= until)
            || l.lot.expires_at <= until
            || (settings.expiry_warning_days > 0
                && !l.expiry_warned
                && l.lot.expires_at - warn <= until)
    }) || holds.iter().any(|h| h.expires_at <= until)
}

/// The balances the lots and holds imply, to check against the cache.
pub fn balances_from_lots(
    lots: &[LotRecord],
    holds: &[crate::store::RedemptionRecord],
    debt_minor: i64,
) -> WalletBalances {
    let mut b = WalletBalances {
        debt_minor,
        ..WalletBalances::default()
    };
    for l in lots {
        match l.lot.state {
            LotState::Pending => b.pending_minor += l.lot.remaining_minor,
            LotState::Available => b.available_minor += l.lot.remaining_minor,
            _ => {}
        }
    }
    b.held_minor = holds.iter().map(|h| h.amount_minor).sum();
    b
}

/// Ends a hold that was never captured (voided or lapsed): every lot gets back what the
/// hold took from it, and one release entry says why.
pub async fn end_hold(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    at: DateTime<Utc>,
    hold: &mut RedemptionRecord,
    state: RedemptionState,
    explanation: String,
) -> AppResult<()> {
    hold.state = state;
    tx.update_redemption(hold).await?;
    let parts: Vec<(i64, i64)> = hold
        .allocations
        .iter()
        .map(|a| (a.lot_id, a.held_minor))
        .collect();
    let refs = EntryRefs {
        redemption_id: Some(hold.id.clone()),
        order: hold.order.clone(),
        ..EntryRefs::default()
    };
    let customer = hold.customer_id.clone();
    release(tx, ctx, at, &customer, &parts, explanation, refs).await
}
