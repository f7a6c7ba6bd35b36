//! `kembali import FILE --format csv|cdnow [--earn]`: past orders from a file, straight into
//! the database (no server needed), with a progress bar on a terminal. The checking and
//! the one-transaction import are `kembali_app::import`'s; this is the terminal around them.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kembali_app::clock::SystemClock;
use kembali_app::import::source::Format;
use kembali_app::import::ImportError;
use kembali_app::store::Store;
use kembali_app::Engine;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: crate::DbArgs,
    /// The file to import.
    pub file: PathBuf,
    /// `csv`: one row per order line with a header (see README.md); `cdnow`: the CDNOW
    /// transaction format (one line per order, dollars with cents, the program's currency).
    #[arg(long, value_enum)]
    pub format: FileFormat,
    /// Earn cashback on the imported orders, each through the engine at its placed_at
    /// (by default history earns nothing).
    #[arg(long)]
    pub earn: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Csv,
    Cdnow,
}

pub async fn run<S: Store>(store: Arc<S>, args: ImportArgs) -> Result<()> {
    let engine = Engine::new(store, Arc::new(SystemClock));
    engine.init().await.context("initializing the program")?;
    let format = match args.format {
        FileFormat::Csv => Format::Csv,
        FileFormat::Cdnow => Format::Cdnow,
    };
    let path = args.file.clone();
    let size = std::fs::metadata(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let open = move || -> std::io::Result<_> {
        Ok(progress_bar(size, "importing").wrap_read(File::open(&path)?))
    };
    let started = Instant::now();
    match engine.import_from(format, open, args.earn).await {
        Ok(s) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "imported {} orders ({} lines) from {}: {} new, {} already there{}; {:.1} s, {:.0} orders/s",
                s.orders,
                s.lines,
                args.file.display(),
                s.inserted,
                s.unchanged,
                if args.earn {
                    format!(", {} minor units of cashback earned", s.cashback_minor)
                } else {
                    ", no cashback earned (history)".into()
                },
                secs,
                s.orders as f64 / secs.max(1e-9)
            );
            Ok(())
        }
        Err(ImportError::Rows(problems)) => {
            for e in &problems.errors {
                eprintln!("{}: {e}", args.file.display());
            }
            if problems.total > problems.errors.len() as u64 {
                eprintln!(
                    "... and {} more",
                    problems.total - problems.errors.len() as u64
                );
            }
            bail!(
                "{} bad row(s) in {}; nothing was imported",
                problems.total,
                args.file.display()
            )
        }
        Err(e) => Err(e).context("importing"),
    }
}

/// A bar over the file's bytes; indicatif draws nothing when stderr is not a terminal.
fn progress_bar(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_message(what);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}
