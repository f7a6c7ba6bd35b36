//! Spending cashback on any channel: quote, hold, capture, void (and lapse, in the wallet's
//! settlement). Holds take lots soonest-expiring first; the allocations say which lot paid.

use crate::error::{AppError, AppResult, StoreError};
use crate::model::{AllocationView, Caller, PostRedemption, QuoteLimit, QuoteView, RedemptionView};
use crate::store::{EntryRefs, RedemptionRecord, RedemptionState, Tx};
use crate::wallet::{end_hold, post, release, settle, Ctx};
use chrono::Duration;
use kembali_core::ids::{Currency, CustomerId, RedemptionId};
use kembali_core::ledger::{Account, Entry, EntryKind};
use kembali_core::lots::{capture_allocations, pick_soonest_expiring, Allocation};

/// How much of an order of `order_total_minor` may be paid with `available_minor`, and the
/// rules that bind (tightest first).
pub fn quote(
    ctx: &Ctx,
    customer: &CustomerId,
    available_minor: i64,
    order_total_minor: i64,
) -> QuoteView {
    let s = &ctx.settings;
    let mut limits = vec![
        QuoteLimit {
            code: "available_balance".into(),
            limit_minor: available_minor,
            message: format!("{} available", ctx.money(available_minor)),
        },
        QuoteLimit {
            code: "max_share_of_order".into(),
            limit_minor: s
                .max_redeem_share_bp
                .apply(order_total_minor)
                .min(order_total_minor),
            message: format!(
                "at most {} of the order may be paid with cashback",
                s.max_redeem_share_bp
            ),
        },
    ];
    if order_total_minor < s.min_order_total_to_redeem_minor {
        limits.push(QuoteLimit {
            code: "min_order_total".into(),
            limit_minor: 0,
            message: format!(
                "cashback can be used on orders of {} or more",
                ctx.money(s.min_order_total_to_redeem_minor)
            ),
        });
    }
    limits.sort_by_key(|l| l.limit_minor);
    QuoteView {
        customer_id: customer.to_string(),
        currency: s.currency.to_string(),
        order_total_minor,
        available_minor,
        max_redeemable_minor: limits[0].limit_minor.max(0),
        limits,
    }
}

pub fn check_currency(ctx: &Ctx, currency: &Currency) -> AppResult<()> {
    if currency == &ctx.settings.currency {
        Ok(())
    } else {
        Err(AppError::rejected(
            "currency_mismatch",
            Some("currency"),
            format!("the program runs in {}", ctx.settings.currency),
        ))
    }
}

fn customer_not_found() -> AppError {
    AppError::NotFound {
        what: "customer",
        field: "customer_id",
    }
}

/// Settles the wallet and quotes, under the customer's lock (a quote changes nothing but
/// may bring due maturations forward).
pub async fn quote_settled(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    customer: &CustomerId,
    order_total_minor: i64,
) -> AppResult<QuoteView> {
    tx.customer(customer, true)
        .await?
        .ok_or_else(customer_not_found)?;
    let available = settled_available(tx, ctx, customer).await?;
    Ok(quote(ctx, customer, available, order_total_minor))
}

/// Settles the (locked) wallet's due work and returns what is available after it.
async fn settled_available(tx: &mut dyn Tx, ctx: &Ctx, customer: &CustomerId) -> AppResult<i64> {
    settle(tx, ctx, customer, ctx.now).await?;
    let c = tx
        .customer(customer, false)
        .await?
        .ok_or_else(customer_not_found)?;
    Ok(c.balances.available_minor)
}

pub async fn hold(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    req: PostRedemption,
    request_hash: String,
) -> AppResult<RedemptionView> {
    check_currency(ctx, &req.currency)?;
    // Lock first, then look for a replay, so two retries racing on two replicas see each other.
    tx.customer(&req.customer_id, true)
        .await?
        .ok_or_else(customer_not_found)?;
    if let Some(existing) = tx.redemption(&req.redemption_id).await? {
        if existing.request_hash != request_hash {
            return Err(AppError::id_reused("redemption_conflict", "redemption"));
        }
        return Ok(view(ctx, &existing));
    }
    let available = settled_available(tx, ctx, &req.customer_id).await?;
    let q = quote(ctx, &req.customer_id, available, req.order_total_minor);
    if req.amount_minor > q.max_redeemable_minor {
        let why = q
            .limits
            .first()
            .map(|l| l.message.clone())
            .unwrap_or_default();
        return Err(AppError::rejected(
            "amount_exceeds_quote",
            Some("amount_minor"),
            format!(
                "at most {} may be redeemed on this order ({why})",
                ctx.money(q.max_redeemable_minor)
            ),
        ));
    }
    let mut lots = tx.open_lots(&req.customer_id).await?;
    let lot_views: Vec<_> = lots.iter().map(|l| l.lot.clone()).collect();
    let picks = pick_soonest_expiring(&lot_views, req.amount_minor)
        .ok_or_else(|| StoreError::Corrupt("available balance and lots disagree".into()))?;
    let mut allocations = Vec::with_capacity(picks.len());
    for (i, take) in picks {
        let lot = &mut lots[i];
        lot.lot.remaining_minor -= take;
        tx.update_lot(lot).await?;
        allocations.push(Allocation {
            lot_id: lot.lot.id,
            lot_expires_at: lot.lot.expires_at,
            held_minor: take,
            captured_minor: 0,
            restored_minor: 0,
        });
    }
    let mut record = RedemptionRecord {
        id: req.redemption_id.clone(),
        customer_id: req.customer_id.clone(),
        channel: req.channel,
        store_id: req.store_id.clone(),
        state: RedemptionState::Held,
        amount_minor: req.amount_minor,
        captured_minor: 0,
        order_total_minor: req.order_total_minor,
        created_at: ctx.now,
        expires_at: ctx.now + Duration::seconds(i64::from(ctx.settings.hold_ttl_secs)),
        request_hash,
        order: None,
        allocations,
    };
    tx.insert_redemption(&record).await?;
    let where_ = match &req.store_id {
        Some(s) => format!("{} ({s})", req.channel),
        None => req.channel.to_string(),
    };
    let entry = Entry::transfer(
        EntryKind::Hold,
        Account::Available,
        Account::Held,
        req.amount_minor,
        format!(
            "{} held for redemption {} on {where_}",
            ctx.money(req.amount_minor),
            req.redemption_id
        ),
    );
    post(tx, ctx, ctx.now, &req.customer_id, entry, refs(&record)).await?;
    if req.capture {
        capture_held(tx, ctx, &mut record, req.amount_minor).await?;
    }
    Ok(view(ctx, &record))
}

fn refs(r: &RedemptionRecord) -> EntryRefs {
    EntryRefs {
        redemption_id: Some(r.id.clone()),
        order: r.order.clone(),
        ..EntryRefs::default()
    }
}

/// Captures `amount` of a held redemption (the soonest-expiring lots pay) and releases the
/// rest. The caller checked the state is `Held` and the amount at most the hold.
pub async fn capture_held(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    r: &mut RedemptionRecord,
    amount: i64,
) -> AppResult<()> {
    let released = capture_allocations(&mut r.allocations, amount);
    r.state = RedemptionState::Captured;
    r.captured_minor = amount;
    tx.update_redemption(r).await?;
    let entry = Entry::transfer(
        EntryKind::Capture,
        Account::Held,
        Account::Redeemed,
        amount,
        format!(
            "{} redeemed (redemption {} captured on {})",
            ctx.money(amount),
            r.id,
            r.channel
        ),
    );
    post(tx, ctx, ctx.now, &r.customer_id, entry, refs(r)).await?;
    let parts: Vec<(i64, i64)> = r
        .allocations
        .iter()
        .map(|a| a.lot_id)
        .zip(released)
        .collect();
    let rest = r.amount_minor - amount;
    release(
        tx,
        ctx,
        ctx.now,
        &r.customer_id,
        &parts,
        format!(
            "{} of redemption {} not captured, back to available",
            ctx.money(rest),
            r.id
        ),
        refs(r),
    )
    .await
}

/// Loads a redemption the caller may act on, with its wallet locked and settled (a hold
/// past its time-to-live has lapsed by then).
async fn load_for_change(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    id: &RedemptionId,
    caller: &Caller,
) -> AppResult<RedemptionRecord> {
    let r = tx.redemption(id).await?.ok_or(AppError::NotFound {
        what: "redemption",
        field: "redemption_id",
    })?;
    check_caller(caller, &r)?;
    tx.customer(&r.customer_id, true).await?;
    settle(tx, ctx, &r.customer_id, ctx.now).await?;
    Ok(tx
        .redemption(id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("redemption vanished".into()))?)
}

/// A channel key acts only on its own channel's (and store's) redemptions.
pub fn check_caller(caller: &Caller, r: &RedemptionRecord) -> AppResult<()> {
    let channel_ok = caller.channel.is_none_or(|c| c == r.channel);
    let store_ok = caller.store_id.is_none() || caller.store_id == r.store_id;
    if channel_ok && store_ok {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "this key may not act on that redemption".into(),
        ))
    }
}

pub async fn capture(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    id: &RedemptionId,
    amount: Option<i64>,
    caller: &Caller,
) -> AppResult<RedemptionView> {
    let mut r = load_for_change(tx, ctx, id, caller).await?;
    match r.state {
        RedemptionState::Held => {}
        RedemptionState::Captured if amount.is_none_or(|a| a == r.captured_minor) => {
            return Ok(view(ctx, &r))
        }
        RedemptionState::Captured => {
            return Err(AppError::conflict(
                "redemption_already_captured",
                format!(
                    "redemption {id} was captured for {}",
                    ctx.money(r.captured_minor)
                ),
            ))
        }
        RedemptionState::Voided => {
            return Err(AppError::conflict(
                "redemption_voided",
                format!("redemption {id} was voided"),
            ))
        }
        RedemptionState::Lapsed => {
            return Err(AppError::conflict(
                "hold_lapsed",
                format!("the hold {id} lapsed after its time-to-live; place a new one"),
            ))
        }
    }
    let amount = amount.unwrap_or(r.amount_minor);
    if amount < 1 {
        return Err(AppError::invalid(
            "amount_minor",
            "out_of_range",
            "must be at least 1",
        ));
    }
    if amount > r.amount_minor {
        return Err(AppError::rejected(
            "capture_exceeds_hold",
            Some("amount_minor"),
            format!("the hold is {}", ctx.money(r.amount_minor)),
        ));
    }
    capture_held(tx, ctx, &mut r, amount).await?;
    Ok(view(ctx, &r))
}

pub async fn void(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    id: &RedemptionId,
    caller: &Caller,
) -> AppResult<RedemptionView> {
    let mut r = load_for_change(tx, ctx, id, caller).await?;
    match r.state {
        RedemptionState::Held => {}
        RedemptionState::Voided => return Ok(view(ctx, &r)),
        RedemptionState::Captured => {
            return Err(AppError::conflict(
                "redemption_captured",
                format!("redemption {id} was captured; return the order it paid for instead"),
            ))
        }
        RedemptionState::Lapsed => {
            return Err(AppError::conflict(
                "hold_lapsed",
                format!("the hold {id} already lapsed"),
            ))
        }
    }
    let explanation = format!(
        "redemption {id} voided: {} back to available",
        ctx.money(r.amount_minor)
    );
    end_hold(
        tx,
        ctx,
        ctx.now,
        &mut r,
        RedemptionState::Voided,
        explanation,
    )
    .await?;
    Ok(view(ctx, &r))
}

pub fn view(ctx: &Ctx, r: &RedemptionRecord) -> RedemptionView {
    let mut allocations = r.allocations.clone();
    allocations.sort_by_key(|a| (a.lot_expires_at, a.lot_id));
    RedemptionView {
        redemption_id: r.id.to_string(),
        customer_id: r.customer_id.to_string(),
        channel: r.channel,
        store_id: r.store_id.as_ref().map(ToString::to_string),
        state: r.state,
        currency: ctx.settings.currency.to_string(),
        amount_minor: r.amount_minor,
        captured_minor: r.captured_minor,
        order_total_minor: r.order_total_minor,
        created_at: r.created_at,
        expires_at: r.expires_at,
        order_id: r.order.as_ref().map(|o| o.order_id.to_string()),
        allocations: allocations
            .into_iter()
            .map(|a| AllocationView {
                lot_id: a.lot_id,
                lot_expires_at: a.lot_expires_at,
                held_minor: a.held_minor,
                captured_minor: a.captured_minor,
                restored_minor: a.restored_minor,
            })
            .collect(),
    }
}
