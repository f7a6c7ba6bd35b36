//! Special functions the models need and `statrs` does not provide: the Gauss hypergeometric
//! function ₂F₁ and the summation engine behind it. Pure numerics on `f64`; no money here.

/// The most terms a hypergeometric series may take before it is declared not convergent.
/// With the transformations below the argument of a series is below 1; at 0.999 the terms
/// fall under 10⁻¹⁶ of the sum after about 40,000 terms, so a million covers arguments up to
/// about 0.99995 and bounds the work of one call to a few milliseconds.
pub const MAX_SERIES_TERMS: u32 = 1_000_000;

/// Relative accuracy asked of a series: the bound on the neglected tail over the sum.
const SERIES_TOLERANCE: f64 = 1e-16;

/// The Gauss hypergeometric function ₂F₁(a, b; c; z) = Σₙ (a)ₙ (b)ₙ / ((c)ₙ n!) zⁿ for real
/// arguments and z < 1 (the principal branch), where (q)ₙ = q (q+1) … (q+n−1).
///
/// How it is computed, so that the result can be reproduced:
/// - z < 0: Pfaff's transformation ₂F₁(a, b; c; z) = (1−z)^(−a) ₂F₁(a, c−b; c; z/(z−1)) turns
///   it into a series in z/(z−1), which lies in (0, 1), so no alternating cancellation.
/// - 0 ≤ z < 1 and a + b > c (unless a or b is a non-positive integer, where the series is a
///   polynomial): Euler's transformation ₂F₁(a, b; c; z) = (1−z)^(c−a−b) ₂F₁(c−a, c−b; c; z).
///   The terms of the direct series grow like n^(a+b−c−1) before zⁿ wins; those of the
///   transformed series shrink like n^(c−a−b−1), so the sum never builds huge partial sums.
/// - Then the Gauss series is summed term by term until a proven bound on the rest of the
///   series is below 10⁻¹⁶ of the sum (see [`MAX_SERIES_TERMS`]).
///
/// Returns `None` when z ≥ 1, an argument is not finite, c is a non-positive integer (a pole)
/// or the series did not reach the tolerance within [`MAX_SERIES_TERMS`] terms.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    if !(a.is_finite() && b.is_finite() && c.is_finite() && z.is_finite()) || z >= 1.0 {
        return None;
    }
    if is_non_positive_integer(c) {
        return None;
    }
    if z < 0.0 {
        let w = z / (z - 1.0);
        return Some((1.0 - z).powf(-a) * hyp2f1_unit_interval(a, c - b, c, w)?);
    }
    hyp2f1_unit_interval(a, b, c, z)
}

/// ₂F₁ for 0 ≤ z < 1, with Euler's transformation where it keeps the terms small.
fn hyp2f1_unit_interval(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    let terminating = is_non_positive_integer(a) || is_non_positive_integer(b);
    if a + b > c && !terminating {
        let scale = (1.0 - z).powf(c - a - b);
        return Some(scale * hypergeometric_series(c - a, c - b, c, z, 0, 1.0)?);
    }
    hypergeometric_series(a, b, c, z, 0, 1.0)
}

fn is_non_positive_integer(q: f64) -> bool {
    q <= 0.0 && q.fract() == 0.0
}

/// Σ_{n ≥ first_index} tₙ where t_{n+1} = tₙ · z (a+n)(b+n) / ((c+n)(n+1)) and t at
/// `first_index` is `first_term`: the tail of a Gauss series (from n = 0 with 1, the whole
/// ₂F₁). `None` if it does not converge within [`MAX_SERIES_TERMS`].
///
/// Why the stopping rule is safe: write g(k) = (a+k)(b+k)/((c+k)(k+1)). For
/// k > m = max(|a|, |b|, |c|), 0 < g(k) and g(k) − 1 = ((a+b−c−1)k + ab − c)/((c+k)(k+1)),
/// whose absolute value is at most (P k + Q)/((k−m)(k+1)) with P = |a+b−c−1|, Q = |ab−c|,
/// a bound that decreases in k. So every ratio after term n is at most
/// ρ = |z| (1 + (P n + Q)/((n−m)(n+1))), and when ρ < 1 the rest of the series is at most
/// |tₙ| ρ / (1−ρ).
pub(crate) fn hypergeometric_series(
    a: f64,
    b: f64,
    c: f64,
    z: f64,
    first_index: u32,
    first_term: f64,
) -> Option<f64> {
    let m = a.abs().max(b.abs()).max(c.abs());
    let p = (a + b - c - 1.0).abs();
    let q = (a * b - c).abs();
    let mut term = first_term;
    let mut sum = first_term;
    for step in 0..MAX_SERIES_TERMS {
        let n = f64::from(first_index) + f64::from(step);
        if term == 0.0 {
            return Some(sum);
        }
        if n > m {
            let rho = z.abs() * (1.0 + (p * n + q) / ((n - m) * (n + 1.0)));
            if rho < 1.0 && term.abs() * rho / (1.0 - rho) <= SERIES_TOLERANCE * sum.abs() {
                return Some(sum);
            }
        }
        term *= z * (a + n) * (b + n) / ((c + n) * (n + 1.0));
        sum += term;
        if !sum.is_finite() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs().max(1e-300)
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // ₂F₁(1, 1; 2; z) = −ln(1−z)/z.
        for z in [-3.0, -0.9, -0.2, 0.1, 0.5, 0.9, 0.99] {
            let want = -(1.0f64 - z).ln() / z;
            let got = hyp2f1(1.0, 1.0, 2.0, z).unwrap();
            assert!(close(got, want, 1e-13), "z = {z}: {got} vs {want}");
        }
        // ₂F₁(a, b; b; z) = (1−z)^(−a).
        for z in [-0.7, 0.3, 0.95] {
            let want = (1.0f64 - z).powf(-2.5);
            let got = hyp2f1(2.5, 1.7, 1.7, z).unwrap();
            assert!(close(got, want, 1e-13), "z = {z}: {got} vs {want}");
        }
    }

    #[test]
    fn hyp2f1_with_a_non_positive_integer_is_a_polynomial() {
        // ₂F₁(−2, b; c; z) = 1 − 2bz/c + b(b+1)z²/(c(c+1)).
        let (b, c, z) = (3.5, 1.5, 0.8);
        let want = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert!(close(hyp2f1(-2.0, b, c, z).unwrap(), want, 1e-14));
    }

    #[test]
    fn hyp2f1_refuses_poles_and_arguments_outside_its_branch() {
        assert_eq!(hyp2f1(1.0, 1.0, -2.0, 0.5), None);
        assert_eq!(hyp2f1(1.0, 1.0, 2.0, 1.0), None);
        assert_eq!(hyp2f1(f64::NAN, 1.0, 2.0, 0.5), None);
    }
}
