//! Holdout experiments at earn time. The program holdout (experiment
//! [`PROGRAM_EXPERIMENT`]) leaves a share of customers out of the whole program: they earn
//! nothing, so that comparing them with everyone else shows what the program causes.
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
use kembali_core::analytics::experiment::{assign, Arm};
use kembali_core::campaign::Evaluation;
use kembali_core::cashback::{compute_cashback, EarnContext};
use kembali_core::ids::CustomerId;
use kembali_core::order::Order;

/// What a held-out customer's order lines say instead of a cashback explanation.
pub const HOLDOUT_EXPLANATION: &str = "No cashback: the customer is in the program's holdout, \
     a random share of customers who earn nothing so that the program's effect can be measured.";

/// The customer's arm in the program holdout, recorded now if this is the first time they
/// are seen at earn time.
pub async fn program_arm(tx: &mut dyn Tx, ctx: &Ctx, customer: &CustomerId) -> AppResult<Arm> {
    let settings = &ctx.settings;
    let proposed = AssignmentRecord {
        experiment_id: PROGRAM_EXPERIMENT.to_string(),
        customer_id: customer.clone(),
        arm: assign(&settings.holdout_salt, customer, settings.holdout_share_bp),
        share_bp: settings.holdout_share_bp,
        first_seen_at: ctx.now,
    };
    Ok(tx.record_assignment(&proposed).await?.arm)
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
