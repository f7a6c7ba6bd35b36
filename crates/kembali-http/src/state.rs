//! What every handler shares: the engine, the test clock when the server runs on one, the
//! Prometheus handle that renders `/metrics`, and the cache of resolved API keys.

use crate::auth::KeyCache;
use kembali_app::clock::TestClock;
use kembali_app::store::Store;
use kembali_app::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

pub struct AppState<S> {
    pub engine: Engine<S>,
    /// Present only when the server runs on a test clock: then `POST /v1/test/clock` exists
    /// and moves it. The engine must have been built on this same clock.
    pub test_clock: Option<Arc<TestClock>>,
    /// Renders `/metrics`; absent when no recorder was installed (tests), and `/metrics`
    /// answers 404.
    pub metrics: Option<PrometheusHandle>,
    pub(crate) keys: Arc<KeyCache>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            engine: self.engine.clone(),
            test_clock: self.test_clock.clone(),
            metrics: self.metrics.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<S: Store> AppState<S> {
    pub fn new(
        engine: Engine<S>,
        test_clock: Option<Arc<TestClock>>,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        AppState {
            engine,
            test_clock,
            metrics,
            keys: Arc::new(KeyCache::default()),
        }
    }
}
