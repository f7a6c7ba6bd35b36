//! The program summary: activity, repeat purchases, users vs non-users, omnichannel
//! engagement and the cost side.
#![doc = include_str!("summary.md")]

use super::{
    again_within, local_date, ratio, Facts, Filter, FilterError, Period, ReportContext, Scope,
};
use crate::ids::Channel;
use serde::Serialize;

/// The windows of "bought again within N days after an order that earned cashback".
pub const BUY_AGAIN_DAYS: [i64; 3] = [30, 60, 90];
/// Six months, in days, for 6-month retention.
pub const RETENTION_6M_DAYS: i64 = 183;

/// The program summary; every field is defined in [`super::SUMMARY_DEFINITIONS`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub period: Period,
    pub active_customers: u64,
    pub orders: u64,
    pub gross_revenue_minor: i64,
    pub returned_minor: i64,
    pub net_revenue_minor: i64,
    pub average_ticket_minor: Option<f64>,
    pub repeat_purchase_rate: Option<f64>,
    pub buy_again: Vec<BuyAgain>,
    pub users_vs_non_users: UsersVsNonUsers,
    pub omnichannel: Omnichannel,
    pub cost: CostMetrics,
}

/// Bought again within `days` after the first order in scope that earned cashback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuyAgain {
    pub days: i64,
    pub eligible_customers: u64,
    pub bought_again: u64,
    pub rate: Option<f64>,
}

/// One side of users vs non-users.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupStats {
    pub customers: u64,
    pub orders: u64,
    pub net_revenue_minor: i64,
    pub average_ticket_minor: Option<f64>,
    pub spend_per_customer_minor: Option<f64>,
    pub retention_6m_eligible: u64,
    pub retention_6m_retained: u64,
    pub retention_6m: Option<f64>,
}

/// Cashback users (who spent cashback) against non-users, and the ratios of the two.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsersVsNonUsers {
    pub users: GroupStats,
    pub non_users: GroupStats,
    pub average_ticket_ratio: Option<f64>,
    pub spend_per_customer_ratio: Option<f64>,
    pub retention_6m_ratio: Option<f64>,
}

/// Earning and spending across channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Omnichannel {
    pub participants: u64,
    pub multichannel_participants: u64,
    pub multichannel_share: Option<f64>,
    pub redeemed_minor: i64,
    pub cross_channel_redeemed_minor: i64,
    pub cross_channel_share: Option<f64>,
}

/// What the program costs and owes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostMetrics {
    pub cashback_earned_minor: i64,
    pub clawed_back_minor: i64,
    pub cost_minor: i64,
    pub cost_share_of_revenue: Option<f64>,
    pub redeemed_minor: i64,
    pub redemption_rate: Option<f64>,
    pub expired_minor: i64,
    pub breakage_rate: Option<f64>,
    pub liability_minor: i64,
    pub liability_at: chrono::DateTime<chrono::Utc>,
}

/// Accumulates one group of customers.
#[derive(Default)]
struct Group {
    customers: u64,
    orders: u64,
    net_minor: i64,
    eligible: u64,
    retained: u64,
}

impl Group {
    fn stats(&self) -> GroupStats {
        GroupStats {
            customers: self.customers,
            orders: self.orders,
            net_revenue_minor: self.net_minor,
            average_ticket_minor: ratio(self.net_minor as f64, self.orders as f64),
            spend_per_customer_minor: ratio(self.net_minor as f64, self.customers as f64),
            retention_6m_eligible: self.eligible,
            retention_6m_retained: self.retained,
            retention_6m: ratio(self.retained as f64, self.eligible as f64),
        }
    }
}

fn channel_bit(c: Channel) -> u8 {
    1 << (c as u8)
}

/// Computes the [`Summary`] of the facts under a filter.
pub fn summary(
    facts: &Facts,
    filter: &Filter,
    ctx: &ReportContext,
) -> Result<Summary, FilterError> {
    let scope = Scope::new(facts, filter, ctx)?;
    let end = scope.period.end;
    let n_customers = facts.customers.len();

    // Who spent cashback (at any time up to the end, anywhere), and the channels each
    // customer earned or spent on in scope.
    let mut redeemer = vec![false; n_customers];
    let mut channels = vec![0u8; n_customers];
    let (mut redeemed, mut cross) = (0i64, 0i64);
    for r in &facts.redemptions {
        if r.at < scope.cutoff && r.amount_minor > 0 {
            redeemer[r.customer as usize] = true;
        }
        if scope.redemption_in_scope(r) {
            redeemed += r.amount_minor;
            if r.earned_on.is_some_and(|c| c != r.channel) {
                cross += r.amount_minor;
            }
            channels[r.customer as usize] |= channel_bit(r.channel);
        }
    }

    let grouped = scope.orders_by_customer();
    let orders = &facts.orders;
    let in_period = |i: u32| scope.in_period(scope.order_day[i as usize]);
    let (mut active, mut n_orders, mut repeaters) = (0u64, 0u64, 0u64);
    let (mut gross, mut returned, mut earned, mut clawed) = (0i64, 0i64, 0i64, 0i64);
    let mut again = [(0u64, 0u64); BUY_AGAIN_DAYS.len()];
    let (mut users, mut non_users) = (Group::default(), Group::default());
    for (customer, group) in grouped.groups() {
        let Some(first) = group.iter().position(|&i| in_period(i)) else {
            continue;
        };
        let mut count = 0u64;
        let mut net = 0i64;
        for &i in group.iter().filter(|&&i| in_period(i)) {
            let o = &orders[i as usize];
            count += 1;
            gross += o.total_minor;
            returned += o.returned_minor;
            net += o.net_minor();
            earned += o.cashback_minor;
            clawed += o.clawed_back_minor;
            if o.cashback_minor > 0 {
                channels[customer as usize] |= channel_bit(o.channel);
            }
        }
        active += 1;
        n_orders += count;
        repeaters += u64::from(count >= 2);
        let anchor = (first..group.len())
            .find(|&k| in_period(group[k]) && orders[group[k] as usize].cashback_minor > 0);
        if let Some(anchor) = anchor {
            let at = orders[group[anchor] as usize].placed_at;
            for (slot, days) in again.iter_mut().zip(BUY_AGAIN_DAYS) {
                if at + chrono::Duration::days(days) <= end {
                    slot.0 += 1;
                    slot.1 += u64::from(again_within(orders, group, anchor, days));
                }
            }
        }
        let side = if redeemer[customer as usize] {
            &mut users
        } else {
            &mut non_users
        };
        side.customers += 1;
        side.orders += count;
        side.net_minor += net;
        let at = orders[group[first] as usize].placed_at;
        if at + chrono::Duration::days(RETENTION_6M_DAYS) <= end {
            side.eligible += 1;
            side.retained += u64::from(again_within(orders, group, first, RETENTION_6M_DAYS));
        }
    }

    let participants = channels.iter().filter(|&&m| m != 0).count() as u64;
    let multichannel = channels.iter().filter(|&&m| m.count_ones() >= 2).count() as u64;
    let in_segment = |c: u32| scope.in_segment[c as usize];
    let expired: i64 = facts
        .expiries
        .iter()
        .filter(|e| e.at < scope.cutoff && in_segment(e.customer))
        .filter(|e| scope.in_period(local_date(scope.zone, e.at)))
        .map(|e| e.amount_minor)
        .sum();
    let liability: i64 = (0..n_customers as u32)
        .filter(|&c| in_segment(c))
        .map(|c| facts.customers[c as usize].liability_minor)
        .sum();
    let (users, non_users) = (users.stats(), non_users.stats());
    let cost = earned - clawed;
    let net_revenue = gross - returned;
    let opt_ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).and_then(|(a, b)| ratio(a, b));
    Ok(Summary {
        period: scope.period,
        active_customers: active,
        orders: n_orders,
        gross_revenue_minor: gross,
        returned_minor: returned,
        net_revenue_minor: net_revenue,
        average_ticket_minor: ratio(net_revenue as f64, n_orders as f64),
        repeat_purchase_rate: ratio(repeaters as f64, active as f64),
        buy_again: BUY_AGAIN_DAYS
            .iter()
            .zip(again)
            .map(|(&days, (eligible, bought))| BuyAgain {
                days,
                eligible_customers: eligible,
                bought_again: bought,
                rate: ratio(bought as f64, eligible as f64),
            })
            .collect(),
        users_vs_non_users: UsersVsNonUsers {
            average_ticket_ratio: opt_ratio(
                users.average_ticket_minor,
                non_users.average_ticket_minor,
            ),
            spend_per_customer_ratio: opt_ratio(
                users.spend_per_customer_minor,
                non_users.spend_per_customer_minor,
            ),
            retention_6m_ratio: opt_ratio(users.retention_6m, non_users.retention_6m),
            users,
            non_users,
        },
        omnichannel: Omnichannel {
            participants,
            multichannel_participants: multichannel,
            multichannel_share: ratio(multichannel as f64, participants as f64),
            redeemed_minor: redeemed,
            cross_channel_redeemed_minor: cross,
            cross_channel_share: ratio(cross as f64, redeemed as f64),
        },
        cost: CostMetrics {
            cashback_earned_minor: earned,
            clawed_back_minor: clawed,
            cost_minor: cost,
            cost_share_of_revenue: ratio(cost as f64, net_revenue as f64),
            redeemed_minor: redeemed,
            redemption_rate: ratio(redeemed as f64, cost as f64),
            expired_minor: expired,
            breakage_rate: ratio(expired as f64, cost as f64),
            liability_minor: liability,
            liability_at: end,
        },
    })
}
