//! Orders earn; returns and cancels claw back exactly what the returned units earned and give
//! back the redeemed cashback that paid for them.

use crate::campaigns::{earn, eval_instant, lot_campaigns, OrderInput};
use crate::error::{AppError, AppResult, StoreError};
use crate::experiments::{held_out, program_arm, Deciding};
use crate::model::{
    CampaignOutcomeView, LineCashbackView, OrderReceipt, PostOrder, PostReturn, ReturnLineView,
    ReturnReceipt, RuleView,
};
use crate::redemptions::capture_held;
use crate::store::{
    CustomerRecord, EntryRefs, LineRecord, LotRecord, OrderKey, OrderRecord, RedemptionState,
    ReturnRecord, Tx,
};
use crate::wallet::{give_back_to_lots, lot_account, post, settle, Ctx};
use chrono::Duration;
use kembali_core::analytics::experiment::Arm;
use kembali_core::campaign::CampaignSet;
use kembali_core::ids::{Channel, CustomerId, LineId, OrderId};
use kembali_core::ledger::{Account, Entry, EntryKind};
use kembali_core::lots::{plan_restore, proportional_share, Lot, LotState};
use kembali_core::money::push_minor;
use kembali_core::program::ClawbackPolicy;

/// Finds the customer or creates them (an order from a customer not seen before), locked.
pub async fn ensure_customer(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    id: &CustomerId,
) -> AppResult<CustomerRecord> {
    if let Some(c) = tx.customer(id, true).await? {
        return Ok(c);
    }
    let c = CustomerRecord::new(id.clone(), ctx.now);
    tx.insert_customer(&c).await?;
    Ok(c)
}

pub async fn post_order(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    campaigns: &CampaignSet,
    req: PostOrder,
    request_hash: String,
) -> AppResult<OrderReceipt> {
    let order = req.order;
    let key = OrderKey {
        channel: order.channel,
        order_id: order.order_id.clone(),
    };
    if let Some(existing) = tx.order(&key).await? {
        if existing.request_hash != request_hash {
            return Err(AppError::id_reused("order_conflict", "order"));
        }
        return Ok(order_receipt(existing));
    }
    if order.currency != ctx.settings.currency {
        return Err(AppError::rejected(
            "currency_mismatch",
            Some("currency"),
            format!("the program runs in {}", ctx.settings.currency),
        ));
    }
    let customer = ensure_customer(tx, ctx, &order.customer_id).await?;
    let total = order.total_minor();
    let redeemed = match &req.redemption_id {
        Some(rid) => link_redemption(tx, ctx, rid, &key, &order.customer_id, total).await?,
        None => 0,
    };
    let placed_at = eval_instant(req.placed_at, ctx.now);
    // A held-out customer earns nothing and draws on no campaign's caps or budget.
    let arm = program_arm(tx, ctx, &order.customer_id, Deciding::RecordAt(ctx.now)).await?;
    let evaluation = if arm == Arm::Treatment {
        let input = OrderInput {
            order: &order,
            customer: &customer,
            partner: req.partner_id.as_ref(),
            at: placed_at,
            redeemed_minor: redeemed,
        };
        earn(tx, ctx, campaigns, &input).await?
    } else {
        held_out(&order, ctx, redeemed)
    };
    let breakdown = evaluation.breakdown;
    let (lot_id, available_at, expires_at) = if breakdown.total_minor > 0 {
        let available_at = ctx.now + Duration::days(i64::from(ctx.settings.pending_days));
        let expires_at = available_at + Duration::days(i64::from(ctx.settings.expiry_days));
        let lot = LotRecord {
            lot: Lot {
                id: 0,
                amount_minor: breakdown.total_minor,
                remaining_minor: breakdown.total_minor,
                available_at,
                expires_at,
                state: LotState::Pending,
            },
            customer_id: order.customer_id.clone(),
            order: Some(key.clone()),
            created_at: ctx.now,
            expiry_warned: false,
            campaigns: lot_campaigns(&evaluation.campaigns),
        };
        let lot_id = tx.insert_lot(&lot).await?;
        let entry = Entry::transfer(
            EntryKind::Earn,
            Account::Earned,
            Account::Pending,
            breakdown.total_minor,
            earn_explanation(ctx, &key, &breakdown.lines),
        );
        let refs = EntryRefs {
            order: Some(key.clone()),
            lot_id: Some(lot_id),
            redemption_id: req.redemption_id.clone(),
            ..EntryRefs::default()
        };
        post(tx, ctx, ctx.now, &order.customer_id, entry, refs).await?;
        (Some(lot_id), Some(available_at), Some(expires_at))
    } else {
        (None, None, None)
    };
    let record = OrderRecord {
        key,
        customer_id: order.customer_id.clone(),
        store_id: order.store_id.clone(),
        currency: ctx.settings.currency.to_string(),
        placed_at,
        created_at: ctx.now,
        redemption_id: req.redemption_id,
        redeemed_minor: redeemed,
        cashback_minor: breakdown.total_minor,
        total_minor: total,
        lot_id,
        available_at,
        expires_at,
        request_hash,
        lines: order
            .lines
            .into_iter()
            .zip(breakdown.lines)
            .map(|(line, cb)| LineRecord {
                net_minor: cb.net_minor,
                redeemed_minor: cb.redeemed_minor,
                cashback_minor: cb.cashback_minor,
                returned_qty: 0,
                clawed_back_minor: 0,
                restored_minor: 0,
                explanation: cb.explanation,
                rules: cb.rules,
                line,
            })
            .collect(),
        partner_id: req.partner_id,
        campaigns: evaluation.campaigns,
    };
    tx.insert_order(&record).await?;
    Ok(order_receipt(record))
}

/// The answer to an order, built from what is stored, so a replay gets the first answer.
pub fn order_receipt(o: OrderRecord) -> OrderReceipt {
    OrderReceipt {
        order_id: o.key.order_id.into(),
        channel: o.key.channel,
        store_id: o.store_id.map(Into::into),
        customer_id: o.customer_id.into(),
        currency: o.currency,
        total_minor: o.total_minor,
        redeemed_minor: o.redeemed_minor,
        cashback_minor: o.cashback_minor,
        lines: o
            .lines
            .into_iter()
            .map(|l| LineCashbackView {
                line_id: l.line.line_id.into(),
                net_minor: l.net_minor,
                redeemed_minor: l.redeemed_minor,
                eligible_minor: l.net_minor - l.redeemed_minor,
                cashback_minor: l.cashback_minor,
                explanation: l.explanation,
                rules: l.rules.into_iter().map(RuleView::from).collect(),
            })
            .collect(),
        campaigns: o
            .campaigns
            .into_iter()
            .map(CampaignOutcomeView::from)
            .collect(),
        lot_id: o.lot_id,
        available_at: o.available_at,
        expires_at: o.expires_at,
        created_at: o.created_at,
    }
}

fn earn_explanation(
    ctx: &Ctx,
    key: &OrderKey,
    lines: &[kembali_core::cashback::LineCashback],
) -> String {
    // "R$ 15,00 cashback on web order O1: line 1: R$ 10,00 (…); line 2: R$ 5,00 (…)", built
    // in one string: every order's entry has one, on the writer's hot path.
    let currency = ctx.settings.currency.as_str();
    let total: i64 = lines.iter().map(|l| l.cashback_minor).sum();
    let wording: usize = lines.iter().map(|l| l.explanation.len() + 32).sum();
    let mut out = String::with_capacity(64 + wording);
    push_minor(&mut out, currency, total);
    out.push_str(" cashback on ");
    out.push_str(key.channel.as_str());
    out.push_str(" order ");
    out.push_str(key.order_id.as_str());
    out.push_str(": ");
    for (i, l) in lines.iter().filter(|l| l.cashback_minor > 0).enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str("line ");
        out.push_str(l.line_id.as_str());
        out.push_str(": ");
        push_minor(&mut out, currency, l.cashback_minor);
        out.push_str(" (");
        out.push_str(&l.explanation);
        out.push(')');
    }
    out
}

/// Links a redemption to the order it paid for; a hold is captured in full here.
async fn link_redemption(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    rid: &kembali_core::ids::RedemptionId,
    key: &OrderKey,
    customer: &CustomerId,
    order_total: i64,
) -> AppResult<i64> {
    let not_usable = |code: &'static str, message: String| {
        AppError::rejected(code, Some("redemption_id"), message)
    };
    let mut r = tx
        .redemption(rid)
        .await?
        .ok_or_else(|| not_usable("redemption_not_found", format!("no redemption {rid}")))?;
    if &r.customer_id != customer {
        return Err(not_usable(
            "redemption_customer_mismatch",
            "the redemption belongs to another customer".into(),
        ));
    }
    if let Some(other) = &r.order {
        return Err(AppError::conflict(
            "redemption_already_used",
            format!(
                "redemption {rid} already paid for {} order {}",
                other.channel, other.order_id
            ),
        ));
    }
    settle(tx, ctx, customer, ctx.now).await?;
    r = tx
        .redemption(rid)
        .await?
        .ok_or_else(|| StoreError::Corrupt("redemption vanished".into()))?;
    match r.state {
        RedemptionState::Held => {
            let amount = r.amount_minor;
            capture_held(tx, ctx, &mut r, amount).await?;
        }
        RedemptionState::Captured => {}
        RedemptionState::Voided | RedemptionState::Lapsed => {
            return Err(AppError::conflict(
                "redemption_not_captured",
                format!("redemption {rid} is {}", r.state.as_str()),
            ))
        }
    }
    if r.captured_minor > order_total {
        return Err(not_usable(
            "redemption_exceeds_order",
            "the redemption is larger than the order total".into(),
        ));
    }
    r.order = Some(key.clone());
    tx.update_redemption(&r).await?;
    Ok(r.captured_minor)
}

/// Finds which channel's order `order_id` names: the one given, or the only one there is.
pub async fn resolve_order(
    tx: &mut dyn Tx,
    order_id: &OrderId,
    channel: Option<Channel>,
) -> AppResult<OrderRecord> {
    let channel = match channel {
        Some(c) => c,
        None => {
            let channels = tx.order_channels(order_id).await?;
            match channels.as_slice() {
                [] => return Err(order_not_found()),
                [only] => *only,
                _ => {
                    return Err(AppError::conflict(
                        "order_id_ambiguous",
                        format!("order {order_id} exists on several channels; pass ?channel="),
                    ))
                }
            }
        }
    };
    let key = OrderKey {
        channel,
        order_id: order_id.clone(),
    };
    tx.order(&key).await?.ok_or_else(order_not_found)
}

fn order_not_found() -> AppError {
    AppError::NotFound {
        what: "order",
        field: "order_id",
    }
}

pub async fn post_return(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    order: OrderRecord,
    ret: PostReturn,
    request_hash: String,
) -> AppResult<ReturnReceipt> {
    // Lock the wallet first, then read the order again: another writer may have returned
    // lines between the lookup and the lock.
    tx.customer(&order.customer_id, true).await?;
    let mut order = tx.order(&order.key).await?.ok_or_else(order_not_found)?;
    if let Some(existing) = tx.return_record(&order.key, &ret.return_id).await? {
        if existing.request_hash != request_hash {
            return Err(AppError::id_reused("return_conflict", "return"));
        }
        return serde_json::from_str(&existing.receipt)
            .map_err(|e| StoreError::Corrupt(e.to_string()).into());
    }
    settle(tx, ctx, &order.customer_id, ctx.now).await?;
    let quantities = returned_quantities(&order, ret.lines.as_deref())?;
    let mut lines_view = Vec::new();
    let (mut claw_total, mut restore_total) = (0i64, 0i64);
    for (i, q) in quantities {
        let line = &mut order.lines[i];
        let q_all = line.line.quantity;
        let claw = proportional_share(
            line.cashback_minor,
            q_all,
            line.returned_qty,
            q,
            line.clawed_back_minor,
        );
        let restore = proportional_share(
            line.redeemed_minor,
            q_all,
            line.returned_qty,
            q,
            line.restored_minor,
        );
        line.returned_qty += q;
        line.clawed_back_minor += claw;
        line.restored_minor += restore;
        claw_total += claw;
        restore_total += restore;
        lines_view.push(ReturnLineView {
            line_id: line.line.line_id.to_string(),
            quantity: q,
            clawed_back_minor: claw,
            restored_minor: restore,
        });
    }
    let refs = EntryRefs {
        order: Some(order.key.clone()),
        return_id: Some(ret.return_id.clone()),
        lot_id: order.lot_id,
        ..EntryRefs::default()
    };
    let what = format!(
        "return {} of {} order {}",
        ret.return_id, order.key.channel, order.key.order_id
    );
    let (taken, debt, forfeited) =
        claw_back(tx, ctx, &order, claw_total, &what, refs.clone()).await?;
    if restore_total > 0 {
        restore(tx, ctx, &order, restore_total, &what, refs).await?;
    }
    tx.update_order_lines(&order.key, &order.lines).await?;
    let receipt = ReturnReceipt {
        order_id: order.key.order_id.to_string(),
        channel: order.key.channel,
        return_id: ret.return_id.to_string(),
        customer_id: order.customer_id.to_string(),
        lines: lines_view,
        clawed_back_minor: claw_total,
        taken_from_lot_minor: taken,
        debt_created_minor: debt,
        forfeited_minor: forfeited,
        restored_minor: restore_total,
        explanation: format!(
            "{what}: {} of cashback clawed back ({} from the order's cashback, {} as debt, {} forfeited); {} of redeemed cashback restored",
            ctx.money(claw_total),
            ctx.money(taken),
            ctx.money(debt),
            ctx.money(forfeited),
            ctx.money(restore_total)
        ),
        created_at: ctx.now,
    };
    tx.insert_return(&ReturnRecord {
        order: order.key.clone(),
        return_id: ret.return_id,
        request_hash,
        receipt: serde_json::to_string(&receipt).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: ctx.now,
    })
    .await?;
    Ok(receipt)
}

/// `(line index, quantity)` for each returned line; every unit left for a cancel.
fn returned_quantities(
    order: &OrderRecord,
    lines: Option<&[(LineId, i64)]>,
) -> AppResult<Vec<(usize, i64)>> {
    let Some(lines) = lines else {
        let all: Vec<(usize, i64)> = order
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.line.quantity - l.returned_qty))
            .filter(|(_, q)| *q > 0)
            .collect();
        if all.is_empty() {
            return Err(AppError::conflict(
                "order_fully_returned",
                "every unit of this order was already returned",
            ));
        }
        return Ok(all);
    };
    let mut problems = crate::model::Problems::default();
    let mut out = Vec::new();
    for (n, (line_id, q)) in lines.iter().enumerate() {
        match order.lines.iter().position(|l| &l.line.line_id == line_id) {
            None => problems.push(
                format!("lines[{n}].line_id"),
                "unknown_line",
                format!("the order has no line {line_id}"),
            ),
            Some(i) => {
                let left = order.lines[i].line.quantity - order.lines[i].returned_qty;
                if *q > left {
                    problems.push(
                        format!("lines[{n}].quantity"),
                        "return_exceeds_purchase",
                        format!("only {left} of line {line_id} can still be returned"),
                    );
                } else {
                    out.push((i, *q));
                }
            }
        }
    }
    problems.finish(Some(out))
}

/// Takes `amount` back from the order's lot; what the lot no longer has becomes debt (or is
/// forfeited). Returns (taken from the lot, debt created, forfeited).
async fn claw_back(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    order: &OrderRecord,
    amount: i64,
    what: &str,
    refs: EntryRefs,
) -> AppResult<(i64, i64, i64)> {
    if amount == 0 {
        return Ok((0, 0, 0));
    }
    let lot_id = order
        .lot_id
        .ok_or_else(|| StoreError::Corrupt("an order with cashback has no lot".into()))?;
    let mut lot = tx
        .lots_by_id(&[lot_id])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("missing lot {lot_id}")))?;
    let open = matches!(lot.lot.state, LotState::Pending | LotState::Available);
    let taken = if open {
        amount.min(lot.lot.remaining_minor)
    } else {
        0
    };
    if taken > 0 {
        let from = lot_account(&lot);
        let entry = Entry::transfer(
            EntryKind::Clawback,
            from,
            Account::ClawedBack,
            taken,
            format!("{what}: {} of its cashback taken back", ctx.money(taken)),
        );
        post(tx, ctx, ctx.now, &order.customer_id, entry, refs.clone()).await?;
        lot.lot.remaining_minor -= taken;
        if lot.lot.remaining_minor == 0 && lot.lot.state == LotState::Pending {
            lot.lot.state = LotState::ClawedBack;
        }
        tx.update_lot(&lot).await?;
    }
    let shortfall = amount - taken;
    if shortfall == 0 {
        return Ok((taken, 0, 0));
    }
    match ctx.settings.clawback_policy {
        ClawbackPolicy::Forfeit => Ok((taken, 0, shortfall)),
        ClawbackPolicy::Debt => {
            let entry = Entry::transfer(
                EntryKind::DebtCreated,
                Account::DebtIssued,
                Account::Debt,
                shortfall,
                format!(
                    "{what}: {} of its cashback was already spent and becomes debt, repaid from the next cashback",
                    ctx.money(shortfall)
                ),
            );
            post(tx, ctx, ctx.now, &order.customer_id, entry, refs).await?;
            Ok((taken, shortfall, 0))
        }
    }
}

/// Gives the redeemed cashback that paid for returned units back to the lots it came from.
async fn restore(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    order: &OrderRecord,
    amount: i64,
    what: &str,
    refs: EntryRefs,
) -> AppResult<()> {
    let rid = order
        .redemption_id
        .as_ref()
        .ok_or_else(|| StoreError::Corrupt("redeemed order without redemption".into()))?;
    let mut r = tx
        .redemption(rid)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("missing redemption {rid}")))?;
    let plan = plan_restore(&r.allocations, amount);
    let given: i64 = plan.iter().map(|(_, a)| a).sum();
    if given != amount {
        return Err(
            StoreError::Corrupt(format!("redemption {rid} cannot restore {amount}")).into(),
        );
    }
    let parts: Vec<(i64, i64)> = plan
        .iter()
        .map(|(i, a)| (r.allocations[*i].lot_id, *a))
        .collect();
    for (i, a) in &plan {
        r.allocations[*i].restored_minor += a;
    }
    tx.update_redemption(&r).await?;
    give_back_to_lots(tx, ctx, ctx.now, &parts).await?;
    for (lot_id, a) in parts {
        let entry = Entry::transfer(
            EntryKind::Restore,
            Account::Redeemed,
            Account::Available,
            a,
            format!(
                "{what}: {} of the cashback redeemed on it restored",
                ctx.money(a)
            ),
        );
        let refs = EntryRefs {
            redemption_id: Some(rid.clone()),
            lot_id: Some(lot_id),
            ..refs.clone()
        };
        post(tx, ctx, ctx.now, &order.customer_id, entry, refs).await?;
    }
    Ok(())
}
