//! What adapters that queue jobs to writer tasks share: a job with its result type erased,
//! and the completion that answers its caller only after the batch's commit.

use super::{Job, Tx};
use crate::error::{AppError, StoreError};
use futures::future::BoxFuture;
use tokio::sync::oneshot;

/// The outcome of one job, held until its batch has committed (or failed to).
pub struct Completion {
    /// The job returned `Ok`: its savepoint is released and its answer waits for the commit.
    pub ok: bool,
    deliver: Box<dyn FnOnce(Option<StoreError>) + Send>,
}

impl Completion {
    /// Answers the caller: a job that succeeded hears the commit's error if there was one; a
    /// job that failed hears its own error (it changed nothing either way).
    pub fn finish(self, commit_error: &Option<StoreError>) {
        (self.deliver)(if self.ok { commit_error.clone() } else { None })
    }
}

/// A job whose result type is erased so that jobs of any type share one queue.
pub type ErasedJob = Box<dyn for<'t> FnOnce(&'t mut dyn Tx) -> BoxFuture<'t, Completion> + Send>;

/// Erases `job`; the returned future yields its result once the job's [`Completion`] is
/// finished. A job dropped unrun (its batch could not start, or it panicked) yields
/// "store unavailable".
pub fn erase<T: Send + 'static>(
    job: Job<T>,
) -> (
    ErasedJob,
    impl std::future::Future<Output = Result<T, AppError>>,
) {
    let (tx, rx) = oneshot::channel::<Result<T, AppError>>();
    let erased: ErasedJob = Box::new(move |t: &mut dyn Tx| {
        Box::pin(async move {
            let result = job(t).await;
            Completion {
                ok: result.is_ok(),
                deliver: Box::new(move |commit_error| {
                    let _ = tx.send(match commit_error {
                        Some(e) => Err(AppError::Store(e)),
                        None => result,
                    });
                }),
            }
        })
    });
    let answer = async move {
        rx.await.unwrap_or_else(|_| {
            Err(AppError::Store(StoreError::Unavailable(
                "the write was not completed".into(),
            )))
        })
    };
    (erased, answer)
}
