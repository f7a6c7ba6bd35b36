//! Fitting BG/NBD on 100,000 synthetic customers (target: at most 2 s per fit).
//!
//! The customers are simulated from the BG/NBD process itself with a seeded SplitMix64
//! generator, so every run fits the same data: first purchases spread over 12 weeks, a
//! 52-week calibration period counted in days, parameters close to CDNOW's.
//!
//! Run: `cargo bench -p kembali-core --bench bgnbd_fit`.

use criterion::{criterion_group, criterion_main, Criterion};
use kembali_core::analytics::bgnbd::{fit, FrequencyRecency};
use std::hint::black_box;
use std::time::Duration;

const CUSTOMERS: usize = 100_000;
const SEED: u64 = 0x6b65_6d62_616c_6921;
/// (r, α in weeks, a, b) of the simulated population.
const TRUE_PARAMS: (f64, f64, f64, f64) = (0.25, 4.0, 0.8, 2.5);
const ACQUISITION_DAYS: u64 = 84;
const CALIBRATION_DAYS: u64 = 364;

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, seedable, good enough for a fixture.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Gamma(shape, 1) by Marsaglia & Tsang (2000), boosted for shape < 1.
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            return self.gamma(shape + 1.0) * self.uniform().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v > 0.0 && self.uniform().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        x / (x + self.gamma(b))
    }
}

/// One simulated customer's (x, t_x, T) in weeks, purchases counted by day.
fn customer(rng: &mut SplitMix64) -> FrequencyRecency {
    let (r, alpha, a, b) = TRUE_PARAMS;
    let rate_per_week = rng.gamma(r) / alpha;
    let dropout = rng.beta(a, b);
    let first_day = rng.next_u64() % ACQUISITION_DAYS;
    let (mut now_weeks, mut x, mut last_day) = (first_day as f64 / 7.0, 0u32, first_day);
    loop {
        now_weeks += -rng.uniform().ln() / rate_per_week;
        let day = (now_weeks * 7.0).floor();
        if day.is_nan() || day >= CALIBRATION_DAYS as f64 {
            break;
        }
        let day = day as u64;
        if day != last_day {
            x += 1;
            last_day = day;
        }
        if rng.uniform() < dropout {
            break;
        }
    }
    let weeks = |days: u64| days as f64 / 7.0;
    FrequencyRecency::new(
        x,
        weeks(last_day - first_day),
        weeks(CALIBRATION_DAYS - first_day),
    )
    .expect("simulated histories are valid")
}

fn bench_fit(c: &mut Criterion) {
    let mut rng = SplitMix64(SEED);
    let data: Vec<FrequencyRecency> = (0..CUSTOMERS).map(|_| customer(&mut rng)).collect();
    let once = fit(&data).expect("the synthetic data fits");
    eprintln!(
        "synthetic fit: {:?} (simulated from {:?}), log-likelihood {:.1}, {} evaluations",
        once.params, TRUE_PARAMS, once.log_likelihood, once.evaluations
    );
    let mut group = c.benchmark_group("bgnbd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("fit_100k_customers", |bench| {
        bench.iter(|| fit(black_box(&data)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_fit);
criterion_main!(benches);
