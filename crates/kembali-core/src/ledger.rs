//! Double-entry postings. Every entry's postings sum to zero; nothing is updated or deleted.
//!
//! Signs: a posting adds its amount to its account's balance. A customer's wallet accounts
//! (`pending`, `available`, `held`, `debt`) carry positive balances; `earned` carries the
//! negative of everything ever earned, so that for the whole program
//! `-earned = pending + available + held + redeemed + expired + clawed_back` and
//! `debt + debt_issued = 0` hold as a consequence of every entry balancing.
//! The asset (currency now, points later) is a property of the entry, not of the schema.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// Customer: earned, not yet usable (inside the return window).
    Pending,
    /// Customer: usable on any channel.
    Available,
    /// Customer: authorized by a hold, not yet captured.
    Held,
    /// Customer: clawback the customer still owes (a receivable).
    Debt,
    /// Program: the source of every earning (its balance is minus all cashback earned).
    Earned,
    /// Program: cashback spent as a discount on orders.
    Redeemed,
    /// Program: breakage, cashback that expired unused.
    Expired,
    /// Program: cashback taken back from lots by returns and debt repayments.
    ClawedBack,
    /// Program: the counterpart of customers' debt.
    DebtIssued,
}

impl Account {
    pub const ALL: [Account; 9] = [
        Account::Pending,
        Account::Available,
        Account::Held,
        Account::Debt,
        Account::Earned,
        Account::Redeemed,
        Account::Expired,
        Account::ClawedBack,
        Account::DebtIssued,
    ];

    /// Whether the account belongs to the entry's customer rather than to the program.
    pub fn is_customer(self) -> bool {
        matches!(
            self,
            Account::Pending | Account::Available | Account::Held | Account::Debt
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Account::Pending => "pending",
            Account::Available => "available",
            Account::Held => "held",
            Account::Debt => "debt",
            Account::Earned => "earned",
            Account::Redeemed => "redeemed",
            Account::Expired => "expired",
            Account::ClawedBack => "clawed_back",
            Account::DebtIssued => "debt_issued",
        }
    }

    pub fn parse(raw: &str) -> Option<Account> {
        Account::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

/// What kind of movement an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Earn,
    Mature,
    Hold,
    Capture,
    Release,
    Expire,
    Clawback,
    DebtCreated,
    DebtRepaid,
    Restore,
}

impl EntryKind {
    pub const ALL: [EntryKind; 10] = [
        EntryKind::Earn,
        EntryKind::Mature,
        EntryKind::Hold,
        EntryKind::Capture,
        EntryKind::Release,
        EntryKind::Expire,
        EntryKind::Clawback,
        EntryKind::DebtCreated,
        EntryKind::DebtRepaid,
        EntryKind::Restore,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Earn => "earn",
            EntryKind::Mature => "mature",
            EntryKind::Hold => "hold",
            EntryKind::Capture => "capture",
            EntryKind::Release => "release",
            EntryKind::Expire => "expire",
            EntryKind::Clawback => "clawback",
            EntryKind::DebtCreated => "debt_created",
            EntryKind::DebtRepaid => "debt_repaid",
            EntryKind::Restore => "restore",
        }
    }

    pub fn parse(raw: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: Account,
    pub amount_minor: i64,
}

/// One balanced movement with the sentence that explains it to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: EntryKind,
    pub postings: Vec<Posting>,
    pub explanation: String,
}

impl Entry {
    /// An entry moving `amount_minor` from one account to another. Amounts are positive;
    /// a zero movement is a caller bug (entries with nothing in them explain nothing).
    pub fn transfer(
        kind: EntryKind,
        from: Account,
        to: Account,
        amount_minor: i64,
        explanation: String,
    ) -> Entry {
        assert!(amount_minor > 0, "an entry moves a positive amount");
        Entry {
            kind,
            postings: vec![
                Posting {
                    account: from,
                    amount_minor: -amount_minor,
                },
                Posting {
                    account: to,
                    amount_minor,
                },
            ],
            explanation,
        }
    }

    /// Adds a second balanced pair to the entry (debt repayment moves a lot and a debt).
    pub fn and(mut self, from: Account, to: Account, amount_minor: i64) -> Entry {
        assert!(amount_minor > 0, "an entry moves a positive amount");
        self.postings.push(Posting {
            account: from,
            amount_minor: -amount_minor,
        });
        self.postings.push(Posting {
            account: to,
            amount_minor,
        });
        self
    }

    pub fn is_balanced(&self) -> bool {
        self.postings
            .iter()
            .map(|p| i128::from(p.amount_minor))
            .sum::<i128>()
            == 0
    }

    /// How the entry changes its customer's wallet.
    pub fn wallet_delta(&self) -> WalletBalances {
        let mut d = WalletBalances::default();
        for p in &self.postings {
            d.add(p.account, p.amount_minor);
        }
        d
    }
}

/// A customer's balances, as cached next to the customer and as derived from postings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletBalances {
    pub pending_minor: i64,
    pub available_minor: i64,
    pub held_minor: i64,
    pub debt_minor: i64,
}

impl WalletBalances {
    /// Adds a posting to the balance it concerns; program accounts are ignored.
    pub fn add(&mut self, account: Account, amount_minor: i64) {
        match account {
            Account::Pending => self.pending_minor += amount_minor,
            Account::Available => self.available_minor += amount_minor,
            Account::Held => self.held_minor += amount_minor,
            Account::Debt => self.debt_minor += amount_minor,
            _ => {}
        }
    }

    pub fn merge(&mut self, other: &WalletBalances) {
        self.pending_minor += other.pending_minor;
        self.available_minor += other.available_minor;
        self.held_minor += other.held_minor;
        self.debt_minor += other.debt_minor;
    }

    pub fn is_zero(&self) -> bool {
        *self == WalletBalances::default()
    }
}

/// Program-wide totals by account, from all postings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramTotals {
    pub earned_minor: i64,
    pub pending_minor: i64,
    pub available_minor: i64,
    pub held_minor: i64,
    pub redeemed_minor: i64,
    pub expired_minor: i64,
    pub clawed_back_minor: i64,
    pub debt_outstanding_minor: i64,
    pub debt_issued_minor: i64,
}

impl ProgramTotals {
    pub fn add(&mut self, account: Account, amount_minor: i64) {
        match account {
            Account::Earned => self.earned_minor -= amount_minor,
            Account::Pending => self.pending_minor += amount_minor,
            Account::Available => self.available_minor += amount_minor,
            Account::Held => self.held_minor += amount_minor,
            Account::Redeemed => self.redeemed_minor += amount_minor,
            Account::Expired => self.expired_minor += amount_minor,
            Account::ClawedBack => self.clawed_back_minor += amount_minor,
            Account::Debt => self.debt_outstanding_minor += amount_minor,
            Account::DebtIssued => self.debt_issued_minor -= amount_minor,
        }
    }

    /// earned = pending + available + held + redeemed + expired + clawed back, and the debt
    /// the program issued is the debt its customers owe.
    pub fn balance(&self) -> bool {
        self.earned_minor
            == self.pending_minor
                + self.available_minor
                + self.held_minor
                + self.redeemed_minor
                + self.expired_minor
                + self.clawed_back_minor
            && self.debt_outstanding_minor == self.debt_issued_minor
            && self.debt_outstanding_minor >= 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_balance_and_move_the_wallet() {
        let e = Entry::transfer(
            EntryKind::Earn,
            Account::Earned,
            Account::Pending,
            1000,
            "x".into(),
        );
        assert!(e.is_balanced());
        assert_eq!(e.wallet_delta().pending_minor, 1000);
        let repay = Entry::transfer(
            EntryKind::DebtRepaid,
            Account::Pending,
            Account::ClawedBack,
            270,
            "y".into(),
        )
        .and(Account::Debt, Account::DebtIssued, 270);
        assert!(repay.is_balanced());
        assert_eq!(
            repay.wallet_delta(),
            WalletBalances {
                pending_minor: -270,
                debt_minor: -270,
                ..Default::default()
            }
        );
    }

    #[test]
    fn an_unbalanced_entry_is_detected() {
        let mut e = Entry::transfer(
            EntryKind::Earn,
            Account::Earned,
            Account::Pending,
            1000,
            "x".into(),
        );
        e.postings[0].amount_minor = -999;
        assert!(!e.is_balanced());
    }

    #[test]
    fn totals_balance_only_when_the_identity_holds() {
        let mut t = ProgramTotals::default();
        for (a, m) in [
            (Account::Earned, -1000),
            (Account::Pending, 600),
            (Account::Redeemed, 400),
        ] {
            t.add(a, m);
        }
        assert!(t.balance());
        t.add(Account::Expired, 1);
        assert!(!t.balance());
    }

    #[test]
    fn account_and_kind_names_round_trip() {
        for a in Account::ALL {
            assert_eq!(Account::parse(a.as_str()), Some(a));
        }
        for k in EntryKind::ALL {
            assert_eq!(EntryKind::parse(k.as_str()), Some(k));
        }
    }
}
