//! The stored form of what an evaluation leaves behind, for every adapter: the outcomes on an
//! order (`orders.campaigns`), the campaign versions on a lot (`lots.campaigns`) and the
//! rules on a line (`order_lines.rules`).
//!
//! They are written as JSON arrays of rows, each row an array in a fixed field order, with
//! the retailer's funding (by far the most common) as `null`: every order stores several,
//! and the object form repeated each field's name in every row. Rows are read in that form
//! and in the object form that databases written before hold, told apart by the list's
//! first element (`[` or `{`); a list is always written whole in one form.
//!
//! ```text
//! outcome: [campaign_id, version, rate_bp|null, eligible, uncapped, amount, [caps], funding|null, explanation, held_out]
//! lot:     [campaign_id, version, amount, funding|null]
//! rule:    [rule, rate_bp, on_minor, version|null, amount|null, [caps], funding|null]
//! ```
//!
//! A rule's `null` funding is the one its kind implies: none for the base rate (no
//! version), the retailer for a campaign. A list with a rule whose funding is neither
//! (which evaluation never makes) is written in the object form, so nothing is ever lost.

use super::{LotCampaign, StoreResult};
use crate::store::decode::{corrupt, from_json, json};
use kembali_core::campaign::{CampaignOutcome, CapKind, Funding};
use kembali_core::cashback::RuleApplied;
use kembali_core::ids::CampaignId;
use kembali_core::money::BasisPoints;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `None` for the retailer.
fn payer(f: &Funding) -> Option<&Funding> {
    (*f != Funding::Retailer).then_some(f)
}

fn funding(stored: Option<Funding>) -> Funding {
    stored.unwrap_or(Funding::Retailer)
}

#[derive(Serialize)]
struct OutcomeOut<'a>(
    &'a CampaignId,
    u32,
    Option<BasisPoints>,
    i64,
    i64,
    i64,
    &'a [CapKind],
    Option<&'a Funding>,
    &'a str,
    bool,
);

#[derive(Deserialize)]
struct OutcomeIn(
    CampaignId,
    u32,
    Option<BasisPoints>,
    i64,
    i64,
    i64,
    Vec<CapKind>,
    Option<Funding>,
    String,
    bool,
);

#[derive(Serialize)]
struct LotOut<'a>(&'a CampaignId, u32, i64, Option<&'a Funding>);

#[derive(Deserialize)]
struct LotIn(CampaignId, u32, i64, Option<Funding>);

#[derive(Serialize)]
struct RuleOut<'a>(
    &'a str,
    BasisPoints,
    i64,
    Option<u32>,
    Option<i64>,
    &'a [CapKind],
    Option<&'a Funding>,
);

#[derive(Deserialize)]
struct RuleIn(
    String,
    BasisPoints,
    i64,
    Option<u32>,
    Option<i64>,
    Vec<CapKind>,
    Option<Funding>,
);

/// The funding a rule of this version implies: none for the base rate, else the retailer.
fn implied(version: Option<u32>) -> Option<Funding> {
    version.map(|_| Funding::Retailer)
}

/// A list in rows; the empty list (most lists of a base-rate-only program) without serde.
fn rows<T: Serialize>(rows: Vec<T>) -> StoreResult<Cow<'static, str>> {
    Ok(match rows.is_empty() {
        true => "[]".into(),
        false => json(&rows)?.into(),
    })
}

/// Whether `stored` is a list in the object form databases written before hold.
fn objects(stored: &str) -> bool {
    stored
        .trim_start()
        .strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with('{'))
}

pub fn outcomes_json(outcomes: &[CampaignOutcome]) -> StoreResult<Cow<'static, str>> {
    rows(
        outcomes
            .iter()
            .map(|o| {
                OutcomeOut(
                    &o.campaign_id,
                    o.version,
                    o.rate_bp,
                    o.eligible_minor,
                    o.uncapped_minor,
                    o.amount_minor,
                    &o.capped_by,
                    payer(&o.funding),
                    &o.explanation,
                    o.held_out,
                )
            })
            .collect(),
    )
}

/// A stored list: in the object form as it is, else its rows made into values by `value`.
fn read<T: DeserializeOwned, R: DeserializeOwned>(
    stored: &str,
    value: impl FnMut(R) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    if objects(stored) {
        return from_json(stored);
    }
    from_json::<Vec<R>>(stored)?
        .into_iter()
        .map(value)
        .collect()
}

pub fn outcomes_from(stored: &str) -> StoreResult<Vec<CampaignOutcome>> {
    read(stored, |r: OutcomeIn| {
        Ok(CampaignOutcome {
            campaign_id: r.0,
            version: r.1,
            rate_bp: r.2,
            eligible_minor: r.3,
            uncapped_minor: r.4,
            amount_minor: r.5,
            capped_by: r.6,
            funding: funding(r.7),
            explanation: r.8,
            held_out: r.9,
        })
    })
}

pub fn lot_campaigns_json(parts: &[LotCampaign]) -> StoreResult<Cow<'static, str>> {
    rows(
        parts
            .iter()
            .map(|p| LotOut(&p.campaign_id, p.version, p.amount_minor, payer(&p.funding)))
            .collect(),
    )
}

pub fn lot_campaigns_from(stored: &str) -> StoreResult<Vec<LotCampaign>> {
    read(stored, |r: LotIn| {
        Ok(LotCampaign {
            campaign_id: r.0,
            version: r.1,
            amount_minor: r.2,
            funding: funding(r.3),
        })
    })
}

pub fn rules_json(rules: &[RuleApplied]) -> StoreResult<Cow<'static, str>> {
    let compact = rules
        .iter()
        .all(|r| r.funding == implied(r.version) || r.version.is_some() && r.funding.is_some());
    if !compact {
        return Ok(json(&rules)?.into());
    }
    rows(
        rules
            .iter()
            .map(|r| {
                let funding = match &r.funding {
                    f if *f == implied(r.version) => None,
                    f => f.as_ref(),
                };
                RuleOut(
                    &r.rule,
                    r.rate_bp,
                    r.on_minor,
                    r.version,
                    r.amount_minor,
                    &r.capped_by,
                    funding,
                )
            })
            .collect(),
    )
}

pub fn rules_from(stored: &str) -> StoreResult<Vec<RuleApplied>> {
    read(stored, |r: RuleIn| {
        let funding = match r.6 {
            None => implied(r.3),
            Some(f) if r.3.is_some() => Some(f),
            Some(_) => return Err(corrupt("the base rate's rule names a payer")),
        };
        Ok(RuleApplied {
            rule: r.0,
            rate_bp: r.1,
            on_minor: r.2,
            version: r.3,
            amount_minor: r.4,
            capped_by: r.5,
            funding,
        })
    })
}

/// The `LIKE` patterns that find the lots whose campaigns may name `campaign`, in the row
/// form and in the object form (a superset: `_` in an id matches any character; callers
/// check the rows exactly).
pub fn campaign_lot_patterns(campaign: &CampaignId) -> [String; 2] {
    [
        format!("%[\"{campaign}\",%"),
        format!("%\"campaign_id\":\"{campaign}\"%"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kembali_core::ids::PartnerId;

    fn partner() -> Funding {
        Funding::Partner {
            partner_id: PartnerId::parse("brand-x").unwrap(),
            partner_share_bp: BasisPoints(5_000),
        }
    }

    fn outcome(
        id: &str,
        funding: Funding,
        capped_by: Vec<CapKind>,
        held_out: bool,
    ) -> CampaignOutcome {
        CampaignOutcome {
            campaign_id: CampaignId::parse(id).unwrap(),
            version: 3,
            rate_bp: Some(BasisPoints(1_000)),
            eligible_minor: 18_000,
            uncapped_minor: 1_800,
            amount_minor: 1_500,
            capped_by,
            funding,
            explanation:
                "Black Friday 10 % (v3) on R$ 180,00 eligible; capped at R$ 15,00 per order".into(),
            held_out,
        }
    }

    fn rule(version: Option<u32>, funding: Option<Funding>) -> RuleApplied {
        RuleApplied {
            rule: version.map_or("base_rate", |_| "bf").into(),
            rate_bp: BasisPoints(500),
            on_minor: 10_006,
            version,
            amount_minor: version.map(|_| 600),
            capped_by: vec![],
            funding,
        }
    }

    #[test]
    fn outcomes_lots_and_rules_come_back_as_they_went_in() {
        let outcomes = vec![
            outcome("bf", Funding::Retailer, vec![], false),
            outcome(
                "brand",
                partner(),
                vec![CapKind::PerOrder, CapKind::Budget],
                true,
            ),
        ];
        let stored = outcomes_json(&outcomes).unwrap();
        assert!(stored.starts_with("[[\"bf\",3,1000,"), "{stored}");
        assert_eq!(outcomes_from(&stored).unwrap(), outcomes);

        let lots = vec![
            LotCampaign {
                campaign_id: CampaignId::parse("base_rate").unwrap(),
                version: 0,
                amount_minor: 1_501,
                funding: Funding::Retailer,
            },
            LotCampaign {
                campaign_id: CampaignId::parse("brand").unwrap(),
                version: 2,
                amount_minor: 600,
                funding: partner(),
            },
        ];
        let stored = lot_campaigns_json(&lots).unwrap();
        assert!(
            stored.starts_with("[[\"base_rate\",0,1501,null],"),
            "{stored}"
        );
        assert_eq!(lot_campaigns_from(&stored).unwrap(), lots);

        let rules = vec![
            rule(None, None),
            rule(Some(1), Some(Funding::Retailer)),
            rule(Some(2), Some(partner())),
        ];
        let stored = rules_json(&rules).unwrap();
        assert!(
            stored.starts_with("[[\"base_rate\",500,10006,null,null,[],null],"),
            "{stored}"
        );
        assert_eq!(rules_from(&stored).unwrap(), rules);

        for empty in [
            outcomes_json(&[]).unwrap(),
            lot_campaigns_json(&[]).unwrap(),
            rules_json(&[]).unwrap(),
        ] {
            assert_eq!(empty, "[]");
        }
        assert!(outcomes_from("[]").unwrap().is_empty());
    }

    #[test]
    fn lists_in_the_object_form_of_earlier_databases_are_read() {
        let outcomes = vec![outcome("bf", partner(), vec![CapKind::CustomerDay], false)];
        assert_eq!(outcomes_from(&json(&outcomes).unwrap()).unwrap(), outcomes);
        let legacy = r#"[{"campaign_id":"base_rate","version":0,"amount_minor":1501,"funding":{"payer":"retailer"}}]"#;
        let lots = lot_campaigns_from(legacy).unwrap();
        assert_eq!(
            (lots[0].amount_minor, &lots[0].funding),
            (1_501, &Funding::Retailer)
        );
        let legacy = r#"[{"rule":"base_rate","rate_bp":500,"on_minor":10006}]"#;
        assert_eq!(rules_from(legacy).unwrap(), vec![rule(None, None)]);
    }

    #[test]
    fn a_rule_whose_payer_its_kind_does_not_imply_keeps_the_object_form() {
        let odd = vec![rule(Some(1), None), rule(None, None)];
        let stored = rules_json(&odd).unwrap();
        assert!(stored.starts_with("[{"), "{stored}");
        assert_eq!(rules_from(&stored).unwrap(), odd);
        let odd = vec![rule(None, Some(Funding::Retailer))];
        assert_eq!(rules_from(&rules_json(&odd).unwrap()).unwrap(), odd);
    }

    #[test]
    fn the_lot_patterns_find_both_forms() {
        let id = CampaignId::parse("bf").unwrap();
        let [rows, objects] = campaign_lot_patterns(&id);
        let like = |pattern: &str, text: &str| {
            let inner = pattern.trim_matches('%');
            text.contains(inner)
        };
        let part = LotCampaign {
            campaign_id: id.clone(),
            version: 1,
            amount_minor: 100,
            funding: Funding::Retailer,
        };
        assert!(like(
            &rows,
            &lot_campaigns_json(std::slice::from_ref(&part)).unwrap()
        ));
        assert!(like(&objects, &json(&[part]).unwrap()));
    }
}
