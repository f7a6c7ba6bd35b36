//! Lots: each earning is a lot with an amount, what remains of it, when it becomes available
//! and when it expires. The rules here decide which lots pay, which get money back and how
//! much a partial return claws back; the app applies the decisions and writes the postings.

use crate::money::round_half_even;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotState {
    /// Inside the return window.
    Pending,
    /// Usable; `remaining` may be zero while holds or captures have it all.
    Available,
    /// Closed: whatever remained expired as breakage.
    Expired,
    /// Closed: a return took all that remained, before it matured.
    ClawedBack,
}

impl LotState {
    pub fn as_str(self) -> &'static str {
        match self {
            LotState::Pending => "pending",
            LotState::Available => "available",
            LotState::Expired => "expired",
            LotState::ClawedBack => "clawed_back",
        }
    }

    pub fn parse(raw: &str) -> Option<LotState> {
        [
            LotState::Pending,
            LotState::Available,
            LotState::Expired,
            LotState::ClawedBack,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub id: i64,
    pub amount_minor: i64,
    pub remaining_minor: i64,
    pub available_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub state: LotState,
}

/// Which lot paid how much of a redemption, and how much of that went back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub lot_id: i64,
    pub lot_expires_at: DateTime<Utc>,
    /// Taken from the lot by the hold.
    pub held_minor: i64,
    /// Kept by the capture (≤ held); the rest went back to the lot.
    pub captured_minor: i64,
    /// Given back to the lot by returns of the order this paid for (≤ captured).
    pub restored_minor: i64,
}

/// Takes `amount_minor` from available lots, soonest-expiring first (ties by lot id, the
/// older first). Returns `(lot index, amount)` pairs, or `None` if the lots hold too little.
pub fn pick_soonest_expiring(lots: &[Lot], amount_minor: i64) -> Option<Vec<(usize, i64)>> {
    let mut order: Vec<usize> = (0..lots.len())
        .filter(|i| lots[*i].state == LotState::Available && lots[*i].remaining_minor > 0)
        .collect();
    order.sort_by_key(|i| (lots[*i].expires_at, lots[*i].id));
    let mut left = amount_minor;
    let mut picks = Vec::new();
    for i in order {
        if left == 0 {
            break;
        }
        let take = left.min(lots[i].remaining_minor);
        picks.push((i, take));
        left -= take;
    }
    (left == 0).then_some(picks)
}

/// Splits a capture of `capture_minor` over a hold's allocations: the soonest-expiring lots
/// pay first, the rest is released. Returns the amount to release per allocation.
/// `capture_minor` must not exceed what the allocations hold.
pub fn capture_allocations(allocations: &mut [Allocation], capture_minor: i64) -> Vec<i64> {
    allocations.sort_by_key(|a| (a.lot_expires_at, a.lot_id));
    let mut left = capture_minor;
    allocations
        .iter_mut()
        .map(|a| {
            let keep = left.min(a.held_minor);
            left -= keep;
            a.captured_minor = keep;
            a.held_minor - keep
        })
        .collect()
}

/// Plans giving back `amount_minor` of captured cashback to the lots it came from, the
/// latest-expiring first so that the customer keeps it longest. Returns `(allocation index,
/// amount)`; never gives a lot more than it paid.
pub fn plan_restore(allocations: &[Allocation], amount_minor: i64) -> Vec<(usize, i64)> {
    let mut order: Vec<usize> = (0..allocations.len()).collect();
    order.sort_by_key(|i| {
        std::cmp::Reverse((allocations[*i].lot_expires_at, allocations[*i].lot_id))
    });
    let mut left = amount_minor;
    let mut plan = Vec::new();
    for i in order {
        if left == 0 {
            break;
        }
        let a = &allocations[i];
        let room = a.captured_minor - a.restored_minor;
        let give = left.min(room);
        if give > 0 {
            plan.push((i, give));
            left -= give;
        }
    }
    plan
}

/// The share of `total_minor` that belongs to `returned_qty` of `quantity` units, computed
/// cumulatively: after returns of `before_qty` units `before_minor` was already taken, so this
/// return takes `round(total × (before + returned) / quantity) − before_minor`. The last return
/// of a line therefore takes the exact remainder and nothing drifts by a cent.
pub fn proportional_share(
    total_minor: i64,
    quantity: i64,
    before_qty: i64,
    returned_qty: i64,
    before_minor: i64,
) -> i64 {
    let after_qty = before_qty + returned_qty;
    let cumulative = if after_qty == quantity {
        total_minor
    } else {
        round_half_even(
            i128::from(total_minor) * i128::from(after_qty),
            i128::from(quantity),
        ) as i64
    };
    cumulative - before_minor
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(day: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(day * 86_400, 0).unwrap()
    }

    fn lot(id: i64, remaining: i64, expires_day: i64) -> Lot {
        Lot {
            id,
            amount_minor: remaining,
            remaining_minor: remaining,
            available_at: at(0),
            expires_at: at(expires_day),
            state: LotState::Available,
        }
    }

    #[test]
    fn holds_take_the_soonest_expiring_lots_first() {
        let lots = vec![lot(1, 500, 30), lot(2, 300, 10), lot(3, 400, 20)];
        assert_eq!(
            pick_soonest_expiring(&lots, 600),
            Some(vec![(1, 300), (2, 300)])
        );
        assert_eq!(pick_soonest_expiring(&lots, 1_201), None);
    }

    #[test]
    fn pending_and_empty_lots_never_pay() {
        let mut lots = vec![lot(1, 500, 30), lot(2, 0, 5)];
        lots[0].state = LotState::Pending;
        assert_eq!(pick_soonest_expiring(&lots, 1), None);
    }

    #[test]
    fn a_partial_capture_keeps_the_soonest_expiring_and_releases_the_rest() {
        let mut allocs = vec![
            Allocation {
                lot_id: 2,
                lot_expires_at: at(20),
                held_minor: 400,
                captured_minor: 0,
                restored_minor: 0,
            },
            Allocation {
                lot_id: 1,
                lot_expires_at: at(10),
                held_minor: 300,
                captured_minor: 0,
                restored_minor: 0,
            },
        ];
        let released = capture_allocations(&mut allocs, 500);
        assert_eq!(allocs[0].lot_id, 1);
        assert_eq!(
            allocs.iter().map(|a| a.captured_minor).collect::<Vec<_>>(),
            vec![300, 200]
        );
        assert_eq!(released, vec![0, 200]);
    }

    #[test]
    fn restores_go_to_the_latest_expiring_lot_first_and_never_exceed_what_it_paid() {
        let allocs = vec![
            Allocation {
                lot_id: 1,
                lot_expires_at: at(10),
                held_minor: 300,
                captured_minor: 300,
                restored_minor: 0,
            },
            Allocation {
                lot_id: 2,
                lot_expires_at: at(20),
                held_minor: 200,
                captured_minor: 200,
                restored_minor: 50,
            },
        ];
        assert_eq!(plan_restore(&allocs, 250), vec![(1, 150), (0, 100)]);
    }

    #[test]
    fn the_last_return_of_a_line_takes_the_exact_remainder() {
        // 1,00 of cashback on 3 units: 0,33 + 0,34 (cumulative 0,67) + 0,33.
        let first = proportional_share(100, 3, 0, 1, 0);
        let second = proportional_share(100, 3, 1, 1, first);
        let third = proportional_share(100, 3, 2, 1, first + second);
        assert_eq!((first, second, third), (33, 34, 33));
    }

    proptest! {
        #[test]
        fn proportional_shares_always_add_up_to_the_total(
            total in 0i64..1_000_000,
            splits in proptest::collection::vec(1i64..5, 1..10),
        ) {
            let quantity: i64 = splits.iter().sum();
            let (mut before_qty, mut before_minor) = (0, 0);
            for q in splits {
                let share = proportional_share(total, quantity, before_qty, q, before_minor);
                prop_assert!(share >= 0);
                before_qty += q;
                before_minor += share;
            }
            prop_assert_eq!(before_minor, total);
        }
    }
}
