//! `kembali serve`: the HTTP API, the scheduler that settles due work every second on the
//! real clock, Prometheus metrics, and a graceful shutdown on SIGTERM or Ctrl-C.

use crate::ServeArgs;
use anyhow::{Context, Result};
use kembali_app::clock::{Clock, SystemClock, TestClock};
use kembali_app::store::Store;
use kembali_app::Engine;
use kembali_http::{router, AppState};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the scheduler looks for due work (maturations, lapsed holds, expiries).
const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// How often histogram buckets are drained so the recorder's memory stays flat.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);
/// Request latency buckets, in seconds: from a fast read to a slow group commit.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Jobs per SQLite group commit (the adapter caps a batch at 512).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// The environment variable holding the bootstrap admin key's secret.
const ADMIN_KEY_ENV: &str = "KEMBALI_ADMIN_KEY";

fn install_metrics() -> Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("store_write_batch_size".into()),
            BATCH_BUCKETS,
        )?
        .install_recorder()
        .context("installing the Prometheus recorder")
}

pub async fn run<S: Store>(store: Arc<S>, args: ServeArgs) -> Result<()> {
    let metrics = install_metrics()?;
    let test_clock = args.test_clock.map(|start| Arc::new(TestClock::new(start)));
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(c) => c.clone(),
        None => Arc::new(SystemClock),
    };
    let engine = Engine::new(store, clock.clone());
    engine.init().await.context("initializing the program")?;
    if let Ok(secret) = std::env::var(ADMIN_KEY_ENV) {
        if !secret.trim().is_empty() {
            engine
                .ensure_admin_key(secret.trim())
                .await
                .with_context(|| format!("registering the admin key from {ADMIN_KEY_ENV}"))?;
            tracing::info!("admin key from {ADMIN_KEY_ENV} is registered");
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(upkeep(metrics.clone(), stop_rx.clone()))];
    match &test_clock {
        None => tasks.push(tokio::spawn(scheduler(engine.clone(), clock, stop_rx))),
        Some(c) => {
            tracing::info!(now = %c.now(), "running on a test clock; POST /v1/test/clock moves it")
        }
    }

    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // On stdout for scripts and tests that started us on port 0, and in the log.
    println!("listening on {addr}");
    tracing::info!("listening on {addr}");

    let app = router(AppState::new(engine, test_clock, Some(metrics)));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;

    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Settles due work every tick until told to stop. A failed pass is logged and retried on
/// the next tick; passes never overlap.
async fn scheduler<S: Store>(
    engine: Engine<S>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SCHEDULER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match engine.run_due_work(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(wallets = n, "settled due work"),
            Err(e) => tracing::error!(error = %e, code = e.code(), "scheduler pass failed"),
        }
    }
}

async fn upkeep(handle: PrometheusHandle, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(METRICS_UPKEEP);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// Resolves at the first SIGTERM or Ctrl-C. The signals are listened to from this call on,
/// before the server announces its address: a supervisor (or a test) that signals right
/// after seeing the address is never missed. Listening in the returned future's first poll
/// instead (in a task axum spawns, which a busy machine may run late) let such a signal
/// arrive after the handler was installed but before anything listened, and the server
/// kept running.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Resolves at the first Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    })
}
