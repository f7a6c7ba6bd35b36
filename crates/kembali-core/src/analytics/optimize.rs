//! A small Nelder–Mead minimiser for the maximum-likelihood fits. Deterministic: the same
//! objective and start give the same answer on every run and platform that follows IEEE 754.
//!
//! Nelder–Mead needs no gradient and only compares values, so an objective that returns
//! `+∞` for points outside its domain is handled naturally. Because the simplex can stall on
//! a ridge, the search is restarted from the best point with a fresh simplex until a restart
//! no longer improves the value (the usual remedy, Press et al., Numerical Recipes §10.5).

/// Where the minimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Minimum<const N: usize> {
    pub point: [f64; N],
    pub value: f64,
    pub evaluations: u32,
}

/// When to stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tolerance {
    /// Largest spread of the simplex's values, relative to max(1, |best value|).
    pub value: f64,
    /// Largest distance of a vertex from the best one, coordinate by coordinate.
    pub point: f64,
    /// Side of the starting simplex (and of each restart's) along every coordinate.
    pub step: f64,
    /// Work budget over all restarts.
    pub max_evaluations: u32,
}

/// Minimises `f` from `start`. `None` if the budget ran out before the simplex converged or
/// no finite value was ever found.
pub(crate) fn minimise<const N: usize>(
    mut f: impl FnMut(&[f64; N]) -> f64,
    start: [f64; N],
    tol: Tolerance,
) -> Option<Minimum<N>> {
    let mut evaluations = 1u32;
    let first = f(&start);
    let mut best = (start, if first.is_nan() { f64::INFINITY } else { first });
    loop {
        let (point, value) = run_simplex(&mut f, best.0, tol, &mut evaluations)?;
        // An infinite start counts as improved by any finite value.
        let improved = best.1 - value > tol.value * value.abs().max(1.0);
        best = (point, value);
        if !improved {
            break;
        }
    }
    best.1.is_finite().then_some(Minimum {
        point: best.0,
        value: best.1,
        evaluations,
    })
}

/// One Nelder–Mead run with the standard coefficients (reflection 1, expansion 2,
/// contraction ½, shrink ½).
fn run_simplex<const N: usize>(
    f: &mut impl FnMut(&[f64; N]) -> f64,
    start: [f64; N],
    tol: Tolerance,
    evaluations: &mut u32,
) -> Option<([f64; N], f64)> {
    let mut eval = |x: &[f64; N], evaluations: &mut u32| {
        *evaluations += 1;
        let v = f(x);
        if v.is_nan() {
            f64::INFINITY
        } else {
            v
        }
    };
    let mut simplex: Vec<([f64; N], f64)> = Vec::with_capacity(N + 1);
    simplex.push((start, eval(&start, evaluations)));
    for i in 0..N {
        let mut x = start;
        x[i] += tol.step;
        simplex.push((x, eval(&x, evaluations)));
    }
    loop {
        simplex.sort_by(|p, q| p.1.total_cmp(&q.1));
        if converged(&simplex, tol) {
            return Some(simplex[0]);
        }
        if *evaluations >= tol.max_evaluations {
            return None;
        }
        let worst = simplex[N];
        let mut centroid = [0.0; N];
        for (x, _) in &simplex[..N] {
            for (c, xi) in centroid.iter_mut().zip(x) {
                *c += xi / N as f64;
            }
        }
        let along = |t: f64| -> [f64; N] {
            let mut x = centroid;
            for (xi, w) in x.iter_mut().zip(&worst.0) {
                *xi += t * (*xi - w);
            }
            x
        };
        let reflected = along(1.0);
        let fr = eval(&reflected, evaluations);
        if fr < simplex[0].1 {
            let expanded = along(2.0);
            let fe = eval(&expanded, evaluations);
            simplex[N] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < simplex[N - 1].1 {
            simplex[N] = (reflected, fr);
        } else {
            let (contracted, fc) = if fr < worst.1 {
                let x = along(0.5);
                (x, eval(&x, evaluations))
            } else {
                let x = along(-0.5);
                (x, eval(&x, evaluations))
            };
            if fc < fr.min(worst.1) {
                simplex[N] = (contracted, fc);
            } else {
                let best = simplex[0].0;
                for vertex in simplex.iter_mut().skip(1) {
                    for (xi, b) in vertex.0.iter_mut().zip(&best) {
                        *xi = b + 0.5 * (*xi - b);
                    }
                    vertex.1 = eval(&vertex.0, evaluations);
                }
            }
        }
    }
}

fn converged<const N: usize>(simplex: &[([f64; N], f64)], tol: Tolerance) -> bool {
    let (best_x, best_f) = simplex[0];
    let worst_f = simplex[N].1;
    if !best_f.is_finite() || !worst_f.is_finite() {
        return false;
    }
    let value_spread = worst_f - best_f <= tol.value * best_f.abs().max(1.0);
    let point_spread = simplex.iter().all(|(x, _)| {
        x.iter()
            .zip(&best_x)
            .all(|(xi, bi)| (xi - bi).abs() <= tol.point)
    });
    value_spread && point_spread
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIGHT: Tolerance = Tolerance {
        value: 1e-14,
        point: 1e-9,
        step: 0.5,
        max_evaluations: 20_000,
    };

    #[test]
    fn finds_the_minimum_of_the_rosenbrock_valley() {
        let rosenbrock = |x: &[f64; 2]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = minimise(rosenbrock, [-1.2, 1.0], TIGHT).unwrap();
        assert!((m.point[0] - 1.0).abs() < 1e-6, "{m:?}");
        assert!((m.point[1] - 1.0).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn treats_points_outside_the_domain_as_worse() {
        // Minimum at x = 2, nothing defined below 1.
        let f = |x: &[f64; 1]| {
            if x[0] < 1.0 {
                f64::NAN
            } else {
                (x[0] - 2.0).powi(2)
            }
        };
        let m = minimise(f, [1.2], TIGHT).unwrap();
        assert!((m.point[0] - 2.0).abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn gives_up_when_the_budget_runs_out() {
        let budget = Tolerance {
            max_evaluations: 10,
            ..TIGHT
        };
        let rosenbrock = |x: &[f64; 2]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        assert_eq!(minimise(rosenbrock, [-1.2, 1.0], budget), None);
    }
}
