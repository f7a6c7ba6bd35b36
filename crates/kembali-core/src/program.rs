//! The program's settings: currency, base rate and the terms of cashback's life.

use crate::ids::Currency;
use crate::limits::{MAX_DAYS, MAX_HOLD_TTL_SECS};
use crate::money::{BasisPoints, MAX_AMOUNT_MINOR};
use serde::{Deserialize, Serialize};

/// What happens when a return claws back cashback that was already spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClawbackPolicy {
    /// The shortfall becomes debt, repaid from the customer's next earnings as they mature.
    Debt,
    /// The program absorbs the shortfall.
    Forfeit,
}

/// The settings of a program. Changing them affects what happens from then on; lots already
/// earned keep the dates they were given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramSettings {
    pub currency: Currency,
    pub base_rate_bp: BasisPoints,
    pub pending_days: u32,
    pub expiry_days: u32,
    pub expiry_warning_days: u32,
    pub max_redeem_share_bp: BasisPoints,
    pub min_order_total_to_redeem_minor: i64,
    pub hold_ttl_secs: u32,
    pub clawback_policy: ClawbackPolicy,
    pub restore_grace_days: u32,
    /// The program's IANA time zone (`America/Sao_Paulo`): campaign windows, birthdays, cap
    /// periods and cohort months are local dates there.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// The share of customers held out of the whole program (they earn nothing), assigned
    /// deterministically from the customer id and `holdout_salt`; 0 = no program holdout.
    #[serde(default)]
    pub holdout_share_bp: BasisPoints,
    /// The salt of the program holdout's assignment. Changing it reshuffles the groups, so
    /// it is set once per experiment.
    #[serde(default = "default_holdout_salt")]
    pub holdout_salt: String,
    /// Gross margin on net revenue, used by predicted lifetime value and ROI.
    #[serde(default = "default_gross_margin")]
    pub gross_margin_bp: BasisPoints,
}

fn default_time_zone() -> String {
    "UTC".into()
}

fn default_holdout_salt() -> String {
    "program".into()
}

fn default_gross_margin() -> BasisPoints {
    BasisPoints(3_000)
}

impl Default for ProgramSettings {
    fn default() -> Self {
        ProgramSettings {
            currency: Currency::parse("BRL").expect("BRL is a currency"),
            base_rate_bp: BasisPoints(500),
            pending_days: 7,
            expiry_days: 180,
            expiry_warning_days: 14,
            max_redeem_share_bp: BasisPoints::FULL,
            min_order_total_to_redeem_minor: 0,
            hold_ttl_secs: 15 * 60,
            clawback_policy: ClawbackPolicy::Debt,
            restore_grace_days: 30,
            time_zone: default_time_zone(),
            holdout_share_bp: BasisPoints(0),
            holdout_salt: default_holdout_salt(),
            gross_margin_bp: default_gross_margin(),
        }
    }
}

/// A setting out of its range: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    pub field: &'static str,
    pub message: String,
}

impl ProgramSettings {
    /// Every problem at once, not only the first.
    pub fn problems(&self) -> Vec<SettingProblem> {
        let mut out = Vec::new();
        let mut bad =
            |field: &'static str, message: String| out.push(SettingProblem { field, message });
        if self.base_rate_bp > BasisPoints::FULL {
            bad("base_rate_bp", "must be at most 10000 (100 %)".into());
        }
        if crate::campaign::parse_zone(&self.time_zone).is_none() {
            bad(
                "time_zone",
                "must be an IANA time zone such as America/Sao_Paulo".into(),
            );
        }
        for (field, share) in [
            ("holdout_share_bp", self.holdout_share_bp),
            ("gross_margin_bp", self.gross_margin_bp),
        ] {
            if share > BasisPoints::FULL {
                bad(field, "must be at most 10000 (100 %)".into());
            }
        }
        if self.holdout_salt.is_empty() || self.holdout_salt.len() > 64 {
            bad("holdout_salt", "must be 1 to 64 characters".into());
        }
        if self.max_redeem_share_bp > BasisPoints::FULL {
            bad(
                "max_redeem_share_bp",
                "must be at most 10000 (100 %)".into(),
            );
        }
        for (field, days) in [
            ("pending_days", self.pending_days),
            ("expiry_days", self.expiry_days),
            ("expiry_warning_days", self.expiry_warning_days),
            ("restore_grace_days", self.restore_grace_days),
        ] {
            if days > MAX_DAYS {
                bad(field, format!("must be at most {MAX_DAYS}"));
            }
        }
        if self.expiry_days == 0 {
            bad("expiry_days", "must be at least 1".into());
        }
        if self.restore_grace_days == 0 {
            bad("restore_grace_days", "must be at least 1".into());
        }
        if self.hold_ttl_secs == 0 || self.hold_ttl_secs > MAX_HOLD_TTL_SECS {
            bad(
                "hold_ttl_secs",
                format!("must be between 1 and {MAX_HOLD_TTL_SECS}"),
            );
        }
        if !(0..=MAX_AMOUNT_MINOR).contains(&self.min_order_total_to_redeem_minor) {
            bad(
                "min_order_total_to_redeem_minor",
                format!("must be between 0 and {MAX_AMOUNT_MINOR}"),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_terms() {
        let s = ProgramSettings::default();
        assert_eq!(s.pending_days, 7);
        assert_eq!(s.expiry_days, 180);
        assert_eq!(s.expiry_warning_days, 14);
        assert_eq!(s.hold_ttl_secs, 900);
        assert_eq!(s.max_redeem_share_bp, BasisPoints(10_000));
        assert_eq!(s.clawback_policy, ClawbackPolicy::Debt);
        assert_eq!(s.restore_grace_days, 30);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let s = ProgramSettings {
            base_rate_bp: BasisPoints(10_001),
            expiry_days: 0,
            hold_ttl_secs: 0,
            min_order_total_to_redeem_minor: -1,
            ..ProgramSettings::default()
        };
        let fields: Vec<_> = s.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec![
                "base_rate_bp",
                "expiry_days",
                "hold_ttl_secs",
                "min_order_total_to_redeem_minor"
            ]
        );
    }

    #[test]
    fn zone_holdout_and_margin_are_checked() {
        let s = ProgramSettings {
            time_zone: "Mars/Olympus".into(),
            holdout_share_bp: BasisPoints(10_001),
            gross_margin_bp: BasisPoints(20_000),
            holdout_salt: String::new(),
            ..ProgramSettings::default()
        };
        let fields: Vec<_> = s.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec![
                "time_zone",
                "holdout_share_bp",
                "gross_margin_bp",
                "holdout_salt"
            ]
        );
    }

    #[test]
    fn settings_stored_before_the_new_fields_still_read() {
        let mut old = serde_json::to_value(ProgramSettings::default()).unwrap();
        for field in [
            "time_zone",
            "holdout_share_bp",
            "holdout_salt",
            "gross_margin_bp",
        ] {
            old.as_object_mut().unwrap().remove(field);
        }
        let read: ProgramSettings = serde_json::from_value(old).unwrap();
        assert_eq!(read, ProgramSettings::default());
    }
}
