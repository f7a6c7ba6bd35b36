//! The CDNOW transaction format, the standard public data set of customer-base analysis,
//! used to check the models against the published results. Parsing only: the caller reads
//! the text (this crate does no I/O).
//!
//! A line holds five whitespace-separated fields: the customer id in the full data set, the
//! customer id in the 1/10 sample, the date as `YYYYMMDD`, the number of CDs bought and the
//! dollar value with two decimals (`29.33`). Trailing carriage returns are whitespace.

use super::rfm::Purchase;
use crate::money::MAX_AMOUNT_MINOR;
use chrono::NaiveDate;

/// One CDNOW transaction, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CdnowRecord {
    /// Customer id in the full CDNOW data set (`00004` → 4).
    pub customer_id: u32,
    /// Customer id in the sample (`0001` → 1): the `ID` of the published summaries.
    pub sample_id: u32,
    /// The day of the transaction.
    pub date: NaiveDate,
    /// Number of CDs bought.
    pub cds: u32,
    /// The dollar value in cents, parsed exactly from its decimal text (`29.33` → 2933).
    pub value_minor: i64,
}

impl CdnowRecord {
    /// The transaction as a purchase (day and value) for [`super::rfm::summarise`].
    pub fn purchase(&self) -> Purchase {
        Purchase {
            date: self.date,
            value_minor: self.value_minor,
        }
    }
}

/// A line that is not a CDNOW transaction, with its line number (as the caller counts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct CdnowError {
    /// The line number the caller gave.
    pub line: usize,
    /// What is wrong with it.
    pub problem: CdnowProblem,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdnowProblem {
    #[error("expected 5 whitespace-separated fields, found {found}")]
    FieldCount { found: usize },
    #[error("customer id {0:?} is not a whole number")]
    CustomerId(String),
    #[error("sample id {0:?} is not a whole number")]
    SampleId(String),
    #[error("date {0:?} is not a calendar date written YYYYMMDD")]
    Date(String),
    #[error("number of CDs {0:?} is not a whole number")]
    Cds(String),
    #[error("value {0:?} is not dollars with two decimals such as 29.33 (at most {max} cents)", max = MAX_AMOUNT_MINOR)]
    Value(String),
}

/// Parses one line; `line` is its number, used only in the error.
pub fn parse_line(text: &str, line: usize) -> Result<CdnowRecord, CdnowError> {
    let fail = |problem| CdnowError { line, problem };
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [customer, sample, date, cds, value] = fields[..] else {
        return Err(fail(CdnowProblem::FieldCount {
            found: fields.len(),
        }));
    };
    Ok(CdnowRecord {
        customer_id: parse_whole(customer)
            .ok_or_else(|| fail(CdnowProblem::CustomerId(customer.into())))?,
        sample_id: parse_whole(sample)
            .ok_or_else(|| fail(CdnowProblem::SampleId(sample.into())))?,
        date: parse_date(date).ok_or_else(|| fail(CdnowProblem::Date(date.into())))?,
        cds: parse_whole(cds).ok_or_else(|| fail(CdnowProblem::Cds(cds.into())))?,
        value_minor: parse_cents(value).ok_or_else(|| fail(CdnowProblem::Value(value.into())))?,
    })
}

/// Parses a whole file's text, numbering lines from 1 and skipping blank lines; stops at the
/// first bad line.
pub fn parse(text: &str) -> Result<Vec<CdnowRecord>, CdnowError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(l, i + 1))
        .collect()
}

fn parse_whole(s: &str) -> Option<u32> {
    // `u32::from_str` also takes a leading `+`, which is not CDNOW's format.
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())?
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = s[..4].parse().ok()?;
    let month = s[4..6].parse().ok()?;
    let day = s[6..].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// `dddd.cc` → cents, exactly; no sign, exactly two decimals.
fn parse_cents(s: &str) -> Option<i64> {
    let (whole, cents) = s.split_once('.')?;
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || cents.len() != 2 || !digits(cents) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = cents.parse().ok()?;
    let total = whole.checked_mul(100)?.checked_add(cents)?;
    (total <= MAX_AMOUNT_MINOR).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cdnow_line_parses_to_exact_cents() {
        let r = parse_line(" 00004 0001 19970101  2   29.33\r", 1).unwrap();
        assert_eq!(
            r,
            CdnowRecord {
                customer_id: 4,
                sample_id: 1,
                date: NaiveDate::from_ymd_opt(1997, 1, 1).unwrap(),
                cds: 2,
                value_minor: 2933,
            }
        );
        assert_eq!(parse_line("1 1 19970105 1 0.00", 1).unwrap().value_minor, 0);
        assert_eq!(
            parse_line("1 1 19970105 1 0.10", 1).unwrap().value_minor,
            10
        );
    }

    #[test]
    fn each_bad_field_is_named_with_its_line() {
        let cases = [
            ("1 1 19970101 2", CdnowProblem::FieldCount { found: 4 }),
            ("x 1 19970101 2 1.00", CdnowProblem::CustomerId("x".into())),
            ("1 -1 19970101 2 1.00", CdnowProblem::SampleId("-1".into())),
            ("1 1 19970230 2 1.00", CdnowProblem::Date("19970230".into())),
            ("1 1 1997011 2 1.00", CdnowProblem::Date("1997011".into())),
            ("1 1 19970101 +2 1.00", CdnowProblem::Cds("+2".into())),
            ("1 1 19970101 2 1.5", CdnowProblem::Value("1.5".into())),
            ("1 1 19970101 2 -1.50", CdnowProblem::Value("-1.50".into())),
            ("1 1 19970101 2 12", CdnowProblem::Value("12".into())),
            ("1 1 19970101 2 .50", CdnowProblem::Value(".50".into())),
            (
                "1 1 19970101 2 99999999999999.00",
                CdnowProblem::Value("99999999999999.00".into()),
            ),
        ];
        for (text, problem) in cases {
            assert_eq!(
                parse_line(text, 42),
                Err(CdnowError { line: 42, problem }),
                "{text}"
            );
        }
        let message = parse_line("1 1 19970101 2 1.5", 7).unwrap_err().to_string();
        assert!(message.starts_with("line 7: value \"1.5\""), "{message}");
    }

    #[test]
    fn a_file_is_numbered_from_one_and_blank_lines_are_skipped() {
        let text = "1 1 19970101 1 1.00\n\n1 1 19970102 1 2.00\n1 1 1997 1 2.00\n";
        assert_eq!(
            parse(text).unwrap_err(),
            CdnowError {
                line: 4,
                problem: CdnowProblem::Date("1997".into())
            }
        );
        let good = "1 1 19970101 1 1.00\n\n1 1 19970102 1 2.00\n";
        assert_eq!(parse(good).unwrap().len(), 2);
    }
}
