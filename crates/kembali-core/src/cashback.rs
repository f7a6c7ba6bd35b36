//! The one pure cashback function: an order and its context in, a per-line breakdown with
//! explanations out. Campaigns extend the rules it applies; its shape stays.
//!
//! Rounding happens once: the exact cashback of every line (eligible × rate) is summed,
//! rounded half-even, and the rounded total is split back over the lines by largest
//! remainder, so the lines always add up to the order's cashback.

use crate::campaign::{evaluate, CampaignSet, CustomerFacts, EvalContext};
use crate::campaign::{CapKind, Funding};
use crate::ids::LineId;
use crate::money::BasisPoints;
use crate::order::Order;
use crate::program::ProgramSettings;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the engine knows besides the order itself.
#[derive(Debug, Clone)]
pub struct EarnContext<'a> {
    pub settings: &'a ProgramSettings,
    /// The part of the order paid with cashback: earns nothing.
    pub redeemed_minor: i64,
}

/// One rule's contribution to a line, for the structured explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleApplied {
    /// `base_rate` for the program's own rate; campaign ids later.
    pub rule: String,
    pub rate_bp: BasisPoints,
    pub on_minor: i64,
    /// The campaign version; `None` for the base rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// This rule's part of the line's cashback; `None` for the base rate, whose part is the
    /// line's cashback less the parts of the campaigns on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
    /// The caps that reduced the campaign's amount on this order, in the order they apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped_by: Vec<CapKind>,
    /// Who pays; `None` for the base rate (the retailer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding: Option<Funding>,
}

/// The cashback of one line and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCashback {
    pub line_id: LineId,
    /// quantity × unit price − discount.
    pub net_minor: i64,
    /// The part of the line paid with cashback (the order's redemption split by largest remainder).
    pub redeemed_minor: i64,
    /// net − redeemed: what cashback is computed on.
    pub eligible_minor: i64,
    pub cashback_minor: i64,
    pub explanation: String,
    pub rules: Vec<RuleApplied>,
}

/// The cashback of a whole order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub lines: Vec<LineCashback>,
    pub total_minor: i64,
}

/// Computes the cashback of `order` at the base rate alone: [`evaluate`] with no campaigns.
/// `ctx.redeemed_minor` must not exceed the order total (the caller checks it against the
/// redemption).
pub fn compute_cashback(order: &Order, ctx: &EarnContext<'_>) -> Breakdown {
    let campaigns = CampaignSet::default();
    let eval = evaluate(
        order,
        &EvalContext {
            settings: ctx.settings,
            redeemed_minor: ctx.redeemed_minor,
            // No campaign is active, so neither the instant nor the zone can change anything.
            at: DateTime::<Utc>::UNIX_EPOCH,
            zone: chrono_tz::UTC,
            customer: CustomerFacts::default(),
            partner: None,
            campaigns: &campaigns,
            usage: &[],
        },
    );
    eval.breakdown
}

#[cfg(test)]
pub(crate) mod oracle {
    use super::*;
    use crate::money::{format_minor, largest_remainder, largest_remainder_wide, round_half_even};

    /// The base-rate computation as it was before campaigns, kept as the oracle the evaluator
    /// must match exactly.
    pub(crate) fn reference_cashback(order: &Order, ctx: &EarnContext<'_>) -> Breakdown {
        let nets: Vec<i64> = order.lines.iter().map(|l| l.net_minor()).collect();
        let redeemed = largest_remainder(ctx.redeemed_minor, &nets);
        let rate = ctx.settings.base_rate_bp;
        let eligible: Vec<i64> = nets.iter().zip(&redeemed).map(|(n, r)| n - r).collect();
        let exact: Vec<i128> = eligible
            .iter()
            .map(|e| i128::from(*e) * i128::from(rate.0))
            .collect();
        let total = round_half_even(exact.iter().sum(), 10_000) as i64;
        let parts = largest_remainder_wide(total, &exact);
        let currency = ctx.settings.currency.as_str();
        let lines = order
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let explanation = if redeemed[i] > 0 {
                    format!(
                        "base rate {rate} on {} ({} less {} paid with cashback)",
                        format_minor(currency, eligible[i]),
                        format_minor(currency, nets[i]),
                        format_minor(currency, redeemed[i]),
                    )
                } else {
                    format!(
                        "base rate {rate} on {}",
                        format_minor(currency, eligible[i])
                    )
                };
                LineCashback {
                    line_id: line.line_id.clone(),
                    net_minor: nets[i],
                    redeemed_minor: redeemed[i],
                    eligible_minor: eligible[i],
                    cashback_minor: parts[i],
                    explanation,
                    rules: vec![RuleApplied {
                        rule: "base_rate".into(),
                        rate_bp: rate,
                        on_minor: eligible[i],
                        version: None,
                        amount_minor: None,
                        capped_by: Vec::new(),
                        funding: None,
                    }],
                }
            })
            .collect();
        Breakdown {
            lines,
            total_minor: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::order::OrderLine;
    use proptest::prelude::*;

    fn line(id: &str, category: &str, qty: i64, price: i64, discount: i64) -> OrderLine {
        OrderLine {
            line_id: LineId::parse(id).unwrap(),
            sku: Sku::parse(format!("sku-{id}")).unwrap(),
            category: Category::parse(category).unwrap(),
            tags: vec![],
            quantity: qty,
            unit_price_minor: price,
            discount_minor: discount,
        }
    }

    fn order(lines: Vec<OrderLine>) -> Order {
        Order {
            channel: Channel::Web,
            store_id: None,
            order_id: OrderId::parse("O1").unwrap(),
            customer_id: CustomerId::parse("ana").unwrap(),
            currency: Currency::parse("BRL").unwrap(),
            lines,
        }
    }

    #[test]
    fn base_rate_earns_per_line_with_an_explanation() {
        let settings = ProgramSettings::default();
        let o = order(vec![
            line("1", "electronics", 1, 15_000, 0),
            line("2", "book", 1, 5_000, 0),
        ]);
        let b = compute_cashback(
            &o,
            &EarnContext {
                settings: &settings,
                redeemed_minor: 0,
            },
        );
        expect_test::expect![[r#"
            total 1000
            1 net 15000 redeemed 0 eligible 15000 cashback 750: base rate 5 % on R$ 150,00
            2 net 5000 redeemed 0 eligible 5000 cashback 250: base rate 5 % on R$ 50,00"#]]
        .assert_eq(&render(&b));
    }

    #[test]
    fn the_part_paid_with_cashback_earns_nothing() {
        let settings = ProgramSettings::default();
        let o = order(vec![line("1", "grocery", 3, 2_000, 0)]);
        let b = compute_cashback(
            &o,
            &EarnContext {
                settings: &settings,
                redeemed_minor: 600,
            },
        );
        expect_test::expect![[r#"
            total 270
            1 net 6000 redeemed 600 eligible 5400 cashback 270: base rate 5 % on R$ 54,00 (R$ 60,00 less R$ 6,00 paid with cashback)"#]]
        .assert_eq(&render(&b));
    }

    #[test]
    fn discounts_reduce_the_line_before_cashback() {
        let settings = ProgramSettings::default();
        let o = order(vec![line("1", "toys", 2, 1_000, 500)]);
        let b = compute_cashback(
            &o,
            &EarnContext {
                settings: &settings,
                redeemed_minor: 0,
            },
        );
        assert_eq!(b.lines[0].net_minor, 1_500);
        assert_eq!(b.total_minor, 75);
    }

    #[test]
    fn rounding_happens_once_on_the_order_not_per_line() {
        // Three lines of 0,10 at 5 %: 0,005 each. Rounded per line that is 0 + 0 + 0; on the
        // order it is round(0,015) = 0,02, split as 1 + 1 + 0.
        let settings = ProgramSettings::default();
        let o = order(vec![
            line("a", "x", 1, 10, 0),
            line("b", "x", 1, 10, 0),
            line("c", "x", 1, 10, 0),
        ]);
        let b = compute_cashback(
            &o,
            &EarnContext {
                settings: &settings,
                redeemed_minor: 0,
            },
        );
        assert_eq!(b.total_minor, 2);
        let parts: Vec<_> = b.lines.iter().map(|l| l.cashback_minor).collect();
        assert_eq!(parts, vec![1, 1, 0]);
    }

    fn render(b: &Breakdown) -> String {
        let mut s = format!("total {}", b.total_minor);
        for l in &b.lines {
            s.push_str(&format!(
                "\n{} net {} redeemed {} eligible {} cashback {}: {}",
                l.line_id,
                l.net_minor,
                l.redeemed_minor,
                l.eligible_minor,
                l.cashback_minor,
                l.explanation
            ));
        }
        s
    }

    proptest! {
        #[test]
        fn line_cashback_adds_up_to_the_order_and_never_exceeds_the_rate(
            prices in proptest::collection::vec((1i64..1_000, 1i64..1_000_000), 1..30),
            rate in 0u32..=10_000,
            redeemed_share in 0u32..=10_000,
        ) {
            let settings = ProgramSettings { base_rate_bp: BasisPoints(rate), ..ProgramSettings::default() };
            let lines: Vec<_> = prices.iter().enumerate().map(|(i, (q, p))| line(&i.to_string(), "c", *q, *p, 0)).collect();
            let o = order(lines);
            let redeemed = BasisPoints(redeemed_share).apply(o.total_minor()).min(o.total_minor());
            let b = compute_cashback(&o, &EarnContext { settings: &settings, redeemed_minor: redeemed });
            prop_assert_eq!(b.lines.iter().map(|l| l.cashback_minor).sum::<i64>(), b.total_minor);
            prop_assert_eq!(b.lines.iter().map(|l| l.redeemed_minor).sum::<i64>(), redeemed);
            prop_assert_eq!(b.total_minor, BasisPoints(rate).apply(o.total_minor() - redeemed));
            for l in &b.lines {
                prop_assert!(l.cashback_minor >= 0 && l.cashback_minor <= l.eligible_minor);
            }
        }
    }
}
