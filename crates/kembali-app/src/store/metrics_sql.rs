//! SQL text the metric reads share between the SQLite and PostgreSQL adapters (the same
//! columns and integer arithmetic in both), so the two cannot drift apart.

use super::StoreResult;
use kembali_core::analytics::metrics::Facts;
use kembali_core::ids::CampaignId;

/// The returned value and clawed back cashback of every order with a returned line:
/// channel, order id, returned value, clawed back (sums cast to BIGINT: PostgreSQL sums
/// BIGINT into NUMERIC). The returned value of a line is net × returned qty / qty rounded
/// half to even, exactly as `metrics::returned_value_minor` (integer division truncates in
/// both databases and every operand is non-negative).
macro_rules! returned_by_order {
    () => {
        "SELECT channel, order_id,
           CAST(SUM(CASE
                 WHEN returned_qty >= quantity THEN net
                 WHEN 2 * ((net * returned_qty) % quantity) > quantity
                   OR (2 * ((net * returned_qty) % quantity) = quantity
                       AND ((net * returned_qty) / quantity) % 2 = 1)
                 THEN (net * returned_qty) / quantity + 1
                 ELSE (net * returned_qty) / quantity
               END) AS BIGINT) AS returned,
           CAST(SUM(clawed_back) AS BIGINT) AS clawed
         FROM order_lines WHERE returned_qty > 0
         GROUP BY channel, order_id"
    };
}

/// See [`returned_by_order!`], keyed by the order's rowid instead, in rowid order: SQLite
/// walks it alongside its scan of the orders (its planner would otherwise probe an
/// automatic index once per order). The returned orders drive the join (`CROSS JOIN` keeps
/// them outside), each probing the orders' primary key once.
pub const RETURNED_BY_ORDER_ROWID: &str = concat!(
    "SELECT o.rowid, r.returned, r.clawed FROM (",
    returned_by_order!(),
    ") r CROSS JOIN orders o ON o.order_id = r.order_id AND o.channel = r.channel
     ORDER BY o.rowid"
);

/// Every order's fact row, with [`RETURNED_BY_ORDER`] joined: customer, channel, store,
/// placed_at, total, cashback, returned value, clawed back, lot id.
pub const ORDER_FACTS: &str = concat!(
    "SELECT o.customer_id, o.channel, o.store_id, o.placed_at, o.total, o.cashback,
            COALESCE(r.returned, 0), COALESCE(r.clawed, 0), o.lot_id
     FROM orders o LEFT JOIN (",
    returned_by_order!(),
    ") r ON r.channel = o.channel AND r.order_id = o.order_id"
);

/// Lots whose campaigns may name a campaign: lot id, campaigns (as stored). `$1` and `$2`
/// are [`super::stored::campaign_lot_patterns`], a superset (LIKE's `_` matches any
/// character); the rows are then checked exactly by [`add_campaign_lot`].
pub const CAMPAIGN_LOTS: &str =
    "SELECT id, campaigns FROM lots WHERE campaigns LIKE $1 OR campaigns LIKE $2";

/// Adds what `campaign` paid into lot `lot_id` (its campaigns as stored) to the facts.
pub fn add_campaign_lot(
    facts: &mut Facts,
    campaign: &CampaignId,
    lot_id: i64,
    campaigns_json: &str,
) -> StoreResult<()> {
    let parts = super::stored::lot_campaigns_from(campaigns_json)?;
    for p in parts.iter().filter(|p| p.campaign_id == *campaign) {
        facts.campaign_paid(campaign, lot_id, p.amount_minor);
    }
    Ok(())
}

/// Every expiry: customer, instant, amount expired.
pub const EXPIRY_FACTS: &str = "
SELECT j.customer_id, j.at, p.amount
FROM journal j JOIN postings p ON p.seq = j.seq
WHERE j.kind = 'expire' AND p.account = 'expired'";

/// Per customer, the sum of pending + available + held postings of entries after the
/// instant bound as the first parameter (written `$1`: SQLite reads it as a parameter too).
/// Naming every kind lets both databases read the journal through its (kind, at) index; a
/// test checks the list against `EntryKind::ALL`.
pub const LIABILITY_MOVES_AFTER: &str = "
SELECT j.customer_id, CAST(SUM(p.amount) AS BIGINT)
FROM journal j JOIN postings p ON p.seq = j.seq
WHERE j.kind IN ('earn', 'mature', 'hold', 'capture', 'release', 'expire', 'clawback',
                 'debt_created', 'debt_repaid', 'restore')
  AND j.at > $1
  AND p.account IN ('pending', 'available', 'held')
GROUP BY j.customer_id HAVING SUM(p.amount) <> 0";

#[cfg(test)]
mod tests {
    use super::*;
    use kembali_core::ledger::EntryKind;

    #[test]
    fn liability_moves_read_every_kind_of_entry() {
        let kinds = LIABILITY_MOVES_AFTER
            .split_once("j.kind IN (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(list, _)| list.split(',').count());
        assert_eq!(kinds, Some(EntryKind::ALL.len()));
        for kind in EntryKind::ALL {
            assert!(
                LIABILITY_MOVES_AFTER.contains(&format!("'{}'", kind.as_str())),
                "{kind:?}"
            );
        }
    }
}
