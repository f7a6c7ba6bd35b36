//! The one conformance suite for the Store port. Every adapter (and the in-memory fake)
//! runs the same test bodies through [`conformance_tests!`]: scenario cases on the engine,
//! and a property test that drives random operations against an independent model.

pub mod cases;
pub mod harness;
pub mod model;

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store made by
/// `$make`, an async function returning `(S, G)` where `G` is kept alive for the test
/// (a temporary directory, a database to drop).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            the_life_of_cashback_from_earning_to_breakage,
            returning_an_order_paid_with_cashback_restores_it_to_its_lots,
            partial_returns_claw_back_to_the_cent_without_drift,
            retries_are_answered_once_and_conflicts_refused,
            refused_requests_change_nothing,
            holds_lapse_void_and_release_what_was_not_captured,
            forfeit_policy_absorbs_spent_clawback,
            expiry_warns_ahead_and_restored_cashback_gets_grace,
            jumping_the_clock_settles_in_the_order_work_fell_due,
            concurrent_spends_and_retries_never_double_count
        );

        #[test]
        fn random_operations_keep_every_invariant_and_match_the_model() {
            $crate::model::check_against_model(|| $make());
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make().await;
                $crate::cases::$case(store).await;
            }
        )*
    };
}
