//! Money arithmetic: integer minor units, basis points, half-even rounding and the
//! largest-remainder split. Never a float.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest amount a single money field may carry (10^13 minor units: a hundred billion in a
/// two-decimal currency). Keeps every sum over [`crate::limits`]-bounded inputs inside i64.
pub const MAX_AMOUNT_MINOR: i64 = 10_000_000_000_000;

/// A rate in basis points: 1 bp = 0.01 %, 10_000 bp = 100 %.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct BasisPoints(pub u32);

impl BasisPoints {
    pub const FULL: BasisPoints = BasisPoints(10_000);

    pub fn new(bp: u32) -> Option<Self> {
        (bp <= 10_000).then_some(BasisPoints(bp))
    }

    /// `amount × rate`, rounded half-even to a whole minor unit.
    pub fn apply(self, amount_minor: i64) -> i64 {
        let exact = i128::from(amount_minor) * i128::from(self.0);
        round_half_even(exact, 10_000) as i64
    }
}

impl fmt::Display for BasisPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        let frac = self.0 % 100;
        if frac == 0 {
            write!(f, "{whole} %")
        } else if frac % 10 == 0 {
            write!(f, "{whole},{} %", frac / 10)
        } else {
            write!(f, "{whole},{frac:02} %")
        }
    }
}

/// `num / den` rounded half to even. `den` must be positive.
pub fn round_half_even(num: i128, den: i128) -> i128 {
    assert!(den > 0, "denominator must be positive");
    // Almost every call fits in 64 bits, where division is one instruction, not a call.
    if let (Ok(n), Ok(d)) = (i64::try_from(num), i64::try_from(den)) {
        let (q, r) = (n.div_euclid(d), n.rem_euclid(d));
        // 2r against d without doubling (2r may not fit): r > d − r, r = d − r.
        let up = r > d - r || (r == d - r && q % 2 != 0);
        return i128::from(q) + i128::from(up);
    }
    round_half_even_wide(num, den)
}

/// [`round_half_even`] in 128 bits.
fn round_half_even_wide(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    let twice = 2 * r;
    if twice > den || (twice == den && q % 2 != 0) {
        q + 1
    } else {
        q
    }
}

/// Splits `total` over `weights` in proportion, so that the parts add up to `total` exactly:
/// every part gets the floor of its exact share, and the units left over go one each to the
/// parts with the largest remainders (ties to the earlier part). All weights zero gives all
/// zeros unless `total` is zero too (the caller must not ask for that).
pub fn largest_remainder(total: i64, weights: &[i64]) -> Vec<i64> {
    let wide: Vec<i128> = weights.iter().map(|w| i128::from(*w)).collect();
    largest_remainder_wide(total, &wide)
}

/// [`largest_remainder`] over exact shares that need more than 64 bits (an amount times a
/// rate in basis points). Weights must be non-negative.
pub fn largest_remainder_wide(total: i64, weights: &[i128]) -> Vec<i64> {
    let sum: i128 = weights.iter().sum();
    if sum == 0 || total == 0 {
        return vec![0; weights.len()];
    }
    let total = i128::from(total);
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: i128 = 0;
    for (i, w) in weights.iter().enumerate() {
        // total ≤ 2^63 and w ≤ 2^77 (an amount times 10^4): the product fits in i128 only
        // when reduced first, so scale by the share instead of multiplying blindly.
        let exact = mul_div_parts(total, *w, sum);
        let (floor, rem) = exact;
        parts.push(floor);
        remainders.push((rem, i));
        given += floor;
    }
    let mut left = total - given;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts.into_iter().map(|p| p as i64).collect()
}

/// `(a × w) / s` as (quotient, remainder) without overflowing i128, for 0 ≤ w ≤ s, a ≥ 0.
fn mul_div_parts(a: i128, w: i128, s: i128) -> (i128, i128) {
    // Most splits fit in 64 bits, where division is one instruction, not a call.
    if let (Ok(a64), Ok(w64), Ok(s64)) = (i64::try_from(a), i64::try_from(w), i64::try_from(s)) {
        if let Some(p) = a64.checked_mul(w64) {
            return (i128::from(p.div_euclid(s64)), i128::from(p.rem_euclid(s64)));
        }
    }
    mul_div_parts_wide(a, w, s)
}

/// [`mul_div_parts`] in 128 bits.
fn mul_div_parts_wide(a: i128, w: i128, s: i128) -> (i128, i128) {
    if let Some(p) = a.checked_mul(w) {
        return (p.div_euclid(s), p.rem_euclid(s));
    }
    // a × w = (a div s × s + a mod s) × w, so the quotient is (a div s) × w plus
    // ((a mod s) × w) / s. The second product can still be large; fall back to u128 long
    // division by halves, which is exact because w ≤ s.
    let (aq, ar) = (a / s, a % s);
    let (q2, r2) = mul_div_small(ar, w, s);
    (aq * w + q2, r2)
}

/// `(x × w) / s` for 0 ≤ x, w < s using doubling, exact for any i128 `s`.
fn mul_div_small(x: i128, w: i128, s: i128) -> (i128, i128) {
    let (mut q, mut r) = (0i128, 0i128);
    let (mut base_q, mut base_r) = (x / s, x % s);
    let mut k = w;
    while k > 0 {
        if k & 1 == 1 {
            q += base_q;
            r += base_r;
            if r >= s {
                r -= s;
                q += 1;
            }
        }
        base_q *= 2;
        base_r *= 2;
        if base_r >= s {
            base_r -= s;
            base_q += 1;
        }
        k >>= 1;
    }
    (q, r)
}

/// Formats minor units with two decimals and a comma, as the statement shows them
/// ("R$ 7,50"). The currency code is what the program uses.
pub fn format_minor(currency: &str, amount_minor: i64) -> String {
    let mut out = String::with_capacity(24);
    push_minor(&mut out, currency, amount_minor);
    out
}

/// [`format_minor`] appended to `out`, without allocating: explanations are built for every
/// line of every order, so this sits on the earning hot path.
pub fn push_minor(out: &mut String, currency: &str, amount_minor: i64) {
    if amount_minor < 0 {
        out.push('-');
    }
    out.push_str(match currency {
        "BRL" => "R$",
        "USD" => "$",
        "EUR" => "€",
        other => other,
    });
    out.push(' ');
    let abs = amount_minor.unsigned_abs();
    push_grouped(out, abs / 100);
    out.push(',');
    let cents = (abs % 100) as u8;
    out.push(char::from(b'0' + cents / 10));
    out.push(char::from(b'0' + cents % 10));
}

/// Digits with a dot every three, from the left: 1234567 → "1.234.567".
fn push_grouped(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        out.push(char::from(digits[i]));
        if i > 0 && i % 3 == 0 {
            out.push('.');
        }
    }
}

/// [`largest_remainder`] written into `out` (same length as `weights`), allocating nothing
/// for orders of up to [`SMALL_SPLIT`] lines: leftover units go one at a time to the largest
/// remaining remainder, ties to the earlier part, exactly as the sorting version does.
pub fn largest_remainder_into(total: i64, weights: &[i64], out: &mut [i64]) {
    assert_eq!(weights.len(), out.len(), "one part per weight");
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum == 0 || total == 0 {
        out.fill(0);
        return;
    }
    if weights.len() > SMALL_SPLIT {
        out.copy_from_slice(&largest_remainder(total, weights));
        return;
    }
    let total = i128::from(total);
    let mut remainders = [0i128; SMALL_SPLIT];
    let mut left = total;
    for (i, w) in weights.iter().enumerate() {
        let (floor, rem) = mul_div_parts(total, i128::from(*w), sum);
        out[i] = floor as i64;
        remainders[i] = rem;
        left -= floor;
    }
    while left > 0 {
        let mut best = 0;
        for i in 1..weights.len() {
            if remainders[i] > remainders[best] {
                best = i;
            }
        }
        out[best] += 1;
        remainders[best] = -1;
        left -= 1;
    }
}

/// Orders up to this many lines split without allocating; larger ones sort.
pub const SMALL_SPLIT: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn half_even_rounds_ties_to_the_even_neighbour() {
        assert_eq!(round_half_even(25, 10), 2);
        assert_eq!(round_half_even(35, 10), 4);
        assert_eq!(round_half_even(26, 10), 3);
        assert_eq!(round_half_even(24, 10), 2);
        assert_eq!(round_half_even(-25, 10), -2);
        assert_eq!(round_half_even(-35, 10), -4);
    }

    #[test]
    fn basis_points_apply_to_minor_units() {
        assert_eq!(BasisPoints(500).apply(15_000), 750);
        assert_eq!(BasisPoints(500).apply(5_400), 270);
        // 5 % of 0,50 is 0,025: a tie, rounded to the even 0,02.
        assert_eq!(BasisPoints(500).apply(50), 2);
        assert_eq!(BasisPoints(500).apply(70), 4);
    }

    #[test]
    fn basis_points_display_as_percent() {
        assert_eq!(BasisPoints(500).to_string(), "5 %");
        assert_eq!(BasisPoints(250).to_string(), "2,5 %");
        assert_eq!(BasisPoints(1_050).to_string(), "10,5 %");
        assert_eq!(BasisPoints(15).to_string(), "0,15 %");
    }

    #[test]
    fn largest_remainder_gives_leftover_units_to_the_biggest_remainders() {
        assert_eq!(largest_remainder(600, &[15_000, 5_000]), vec![450, 150]);
        assert_eq!(largest_remainder(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(largest_remainder(2, &[1, 1, 1]), vec![1, 1, 0]);
        assert_eq!(largest_remainder(0, &[1, 2]), vec![0, 0]);
    }

    #[test]
    fn money_formats_like_a_statement() {
        assert_eq!(format_minor("BRL", 750), "R$ 7,50");
        assert_eq!(format_minor("BRL", -350), "-R$ 3,50");
        assert_eq!(format_minor("BRL", 123_456_789), "R$ 1.234.567,89");
        assert_eq!(format_minor("PTS", 5), "PTS 0,05");
        assert_eq!(
            format_minor("EUR", i64::MIN),
            "-€ 92.233.720.368.547.758,08"
        );
    }

    proptest! {
        #[test]
        fn money_formats_as_grouped_digits_and_two_decimals(amount in any::<i64>()) {
            let abs = amount.unsigned_abs();
            let units = (abs / 100).to_string();
            let groups: Vec<&str> = units
                .as_bytes()
                .rchunks(3)
                .rev()
                .map(|g| std::str::from_utf8(g).unwrap())
                .collect();
            let sign = if amount < 0 { "-" } else { "" };
            let expected = format!("{sign}R$ {},{:02}", groups.join("."), abs % 100);
            prop_assert_eq!(format_minor("BRL", amount), expected);
        }

        #[test]
        fn the_64_bit_paths_equal_the_128_bit_ones(
            num in any::<i64>(),
            den in 1i64..=i64::MAX,
            small_den in 1i64..20_000,
            a in 0i64..=i64::MAX,
            w_share in 0.0f64..=1.0,
        ) {
            for d in [den, small_den, 1, 2, i64::MAX] {
                let (n, d) = (i128::from(num), i128::from(d));
                prop_assert_eq!(round_half_even(n, d), round_half_even_wide(n, d));
                prop_assert_eq!(round_half_even(2 * n + 1, 2 * d), round_half_even_wide(2 * n + 1, 2 * d));
            }
            // 0 ≤ w ≤ s, as the splits call it.
            let w = (den as f64 * w_share) as i64;
            let (a, w, s) = (i128::from(a), i128::from(w.min(den)), i128::from(den));
            prop_assert_eq!(mul_div_parts(a, w, s), mul_div_parts_wide(a, w, s));
            // Amounts and weights of real splits: the product fits in 64 bits.
            let (small, amount) = (i128::from(small_den), a % 10_000_000_000);
            let weight = (small_den as f64 * w_share) as i128;
            prop_assert_eq!(
                mul_div_parts(amount, weight.min(small), small),
                mul_div_parts_wide(amount, weight.min(small), small)
            );
        }

        #[test]
        fn largest_remainder_parts_add_up_and_stay_within_one_unit(
            total in 0i64..1_000_000_000,
            weights in proptest::collection::vec(0i64..1_000_000, 1..20),
        ) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let parts = largest_remainder(total, &weights);
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
            for (p, w) in parts.iter().zip(&weights) {
                let exact_floor = (i128::from(total) * i128::from(*w)) / sum;
                prop_assert!(i128::from(*p) == exact_floor || i128::from(*p) == exact_floor + 1);
            }
        }

        #[test]
        fn the_allocation_free_split_equals_the_sorting_one(
            total in 0i64..1_000_000_000,
            weights in proptest::collection::vec(0i64..1_000_000, 1..40),
        ) {
            let mut out = vec![0; weights.len()];
            largest_remainder_into(total, &weights, &mut out);
            let sum: i64 = weights.iter().sum();
            let expected = if sum == 0 { vec![0; weights.len()] } else { largest_remainder(total, &weights) };
            prop_assert_eq!(out, expected);
        }

        #[test]
        fn half_even_is_within_half_a_unit(num in -1_000_000_000i128..1_000_000_000, den in 1i128..100_000) {
            let r = round_half_even(num, den);
            prop_assert!((2 * (num - r * den)).abs() <= den);
        }
    }
}
