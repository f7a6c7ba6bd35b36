//! Holdout experiments at earn time. The program holdout (experiment
//! [`PROGRAM_EXPERIMENT`]) leaves a share of customers out of the whole program: they earn
//! nothing, so that comparing them with everyone else shows what the program causes.
//!
//! A campaign with a `holdout` is an experiment too ([`campaign_experiment`],
//! `campaign:<id>`), salted with its own salt or its id. A customer is assigned to it when
//! first seen *by the campaign*: at their first order (of a program-treated customer) that
//! the campaign matches and would pay something before caps
//! ([`kembali_core::campaign::holdout_candidates`]), recorded at that order's instant. So
//! the experiment's population is the customers the campaign reaches, and a held-out
//! customer's orders are evaluated as if the campaign did not exist (the base rate and the
//! other campaigns still pay). Program-held-out customers earn nothing and are never
//! assigned to a campaign's experiment.
//!
//! A customer's arm is `experiment::assign(salt, id, share)`, recorded the first time an
//! order of theirs is posted; from then on the recorded arm decides, whatever the share or
//! salt become (a customer never moves between arms mid-experiment, and customers seen
//! before a holdout started stay treated, recorded with the share of their time, 0).
//!
//! Must never: decide an arm from anything but the recorded assignment once one exists.

use crate::error::AppResult;
use crate::store::{AssignmentRecord, Tx, PROGRAM_EXPERIMENT};
use crate::wallet::Ctx;
use chrono::{DateTime, Utc};
use kembali_core::analytics::experiment::{assign, Arm};
use kembali_core::campaign::{CampaignSet, CampaignVersion, Evaluation};
use kembali_core::cashback::{compute_cashback, EarnContext};
use kembali_core::ids::{CampaignId, CustomerId, CAMPAIGN_EXPERIMENT_PREFIX};
use kembali_core::money::BasisPoints;
use kembali_core::order::Order;

/// What a held-out customer's order lines say instead of a cashback explanation.
pub const HOLDOUT_EXPLANATION: &str = "No cashback: the customer is in the program's holdout, \
     a random share of customers who earn nothing so that the program's effect can be measured.";

/// Whether deciding a customer's arm records it (at an order, at that instant: the first
/// record stands) or only reads it (a preview: the recorded arm, else the one assignment
/// gives now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deciding {
    RecordAt(DateTime<Utc>),
    ReadOnly,
}

/// The customer's arm in `experiment_id`: the recorded one, else the one `propose` gives
/// (the arm assignment gives now, with its share), recorded first when `deciding` records.
/// A customer seen before costs one read: assignment (a SHA-256) runs only for a new one.
async fn decide(
    tx: &mut dyn Tx,
    experiment_id: String,
    customer: &CustomerId,
    propose: impl FnOnce() -> (Arm, BasisPoints),
    deciding: Deciding,
) -> AppResult<Arm> {
    if let Some(recorded) = tx.assignment(&experiment_id, customer).await? {
        return Ok(recorded.arm);
    }
    let (arm, share_bp) = propose();
    Ok(match deciding {
        // Recorded unless another writer recorded one first: the record that stands decides.
        Deciding::RecordAt(at) => {
            let proposed = AssignmentRecord {
                experiment_id,
                customer_id: customer.clone(),
                arm,
                share_bp,
                first_seen_at: at,
            };
            tx.record_assignment(&proposed).await?.arm
        }
        Deciding::ReadOnly => arm,
    })
}

/// The customer's arm in the program holdout; an order records it the first time the
/// customer is seen at earn time.
pub async fn program_arm(
    tx: &mut dyn Tx,
    ctx: &Ctx,
    customer: &CustomerId,
    deciding: Deciding,
) -> AppResult<Arm> {
    let settings = &ctx.settings;
    let propose = || {
        (
            assign(&settings.holdout_salt, customer, settings.holdout_share_bp),
            settings.holdout_share_bp,
        )
    };
    decide(
        tx,
        PROGRAM_EXPERIMENT.to_string(),
        customer,
        propose,
        deciding,
    )
    .await
}

/// The id of campaign `id`'s holdout experiment: `campaign:<id>`.
pub fn campaign_experiment(id: &CampaignId) -> String {
    format!("{CAMPAIGN_EXPERIMENT_PREFIX}{id}")
}

/// The arm assignment gives `customer` in campaign `v`'s holdout now, with the share it
/// gave (treated with share 0 when the campaign has no holdout).
pub fn campaign_arm_now(v: &CampaignVersion, customer: &CustomerId) -> (Arm, BasisPoints) {
    match v.rules.holdout() {
        Some(h) => (assign(h.salt_for(&v.id), customer, h.share), h.share),
        None => (Arm::Treatment, BasisPoints(0)),
    }
}

/// The campaigns among `candidates` (those with a holdout that the order reaches) whose
/// holdout the customer is in; an order records their arm in each the first time they are
/// seen (at the order's instant), and a recorded arm decides from then on.
pub async fn campaign_holdouts(
    tx: &mut dyn Tx,
    set: &CampaignSet,
    candidates: &[CampaignId],
    customer: &CustomerId,
    deciding: Deciding,
) -> AppResult<Vec<CampaignId>> {
    let mut held = Vec::new();
    for id in candidates {
        let Some(v) = set.version(id) else { continue };
        let propose = || campaign_arm_now(v, customer);
        let arm = decide(tx, campaign_experiment(id), customer, propose, deciding).await?;
        if arm == Arm::Holdout {
            held.push(id.clone());
        }
    }
    Ok(held)
}

/// What a held-out customer's order earns: nothing on any line, each line saying why
/// ([`HOLDOUT_EXPLANATION`]), and no campaign outcome.
pub fn held_out(order: &Order, ctx: &Ctx, redeemed_minor: i64) -> Evaluation {
    let mut breakdown = compute_cashback(
        order,
        &EarnContext {
            settings: &ctx.settings,
            redeemed_minor,
        },
    );
    for line in &mut breakdown.lines {
        line.cashback_minor = 0;
        line.explanation = HOLDOUT_EXPLANATION.to_string();
        line.rules.clear();
    }
    breakdown.total_minor = 0;
    Evaluation {
        breakdown,
        campaigns: Vec::new(),
    }
}
