//! The one conformance suite for the Store port. Every adapter (and the in-memory fake)
//! runs the same test bodies through [`conformance_tests!`]: scenario cases on the engine,
//! and a property test that drives random operations against an independent model.

pub mod cases;
pub mod harness;
pub mod metrics;
pub mod model;

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store made by
/// `$make`, an async function returning `(S, G)` where `G` is kept alive for the test
/// (a temporary directory, a database to drop).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make; cases;
            the_life_of_cashback_from_earning_to_breakage,
            returning_an_order_paid_with_cashback_restores_it_to_its_lots,
            partial_returns_claw_back_to_the_cent_without_drift,
            retries_are_answered_once_and_conflicts_refused,
            refused_requests_change_nothing,
            the_program_is_created_once_and_a_change_keeps_what_it_does_not_name,
            holds_lapse_void_and_release_what_was_not_captured,
            forfeit_policy_absorbs_spent_clawback,
            expiry_warns_ahead_and_restored_cashback_gets_grace,
            jumping_the_clock_settles_in_the_order_work_fell_due,
            concurrent_spends_and_retries_never_double_count,
            a_backtest_of_the_live_campaigns_pays_what_they_paid,
            campaigns_keep_versions_budgets_usage_and_history,
            a_budget_for_ten_pays_ten_of_64_concurrent_orders,
            imported_history_is_stored_once_earns_nothing_and_conflicts_are_named
        );
        $crate::conformance_tests!(@cases $make; metrics;
            metric_facts_and_liability_at_a_past_date,
            the_program_holdout_earns_nothing_and_sticks,
            a_campaign_holdout_leaves_the_base_rate_and_sticks
        );

        #[test]
        fn random_operations_keep_every_invariant_and_match_the_model() {
            $crate::model::check_against_model(|| $make());
        }
    };
    (@cases $make:expr; $module:ident; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make().await;
                $crate::$module::$case(store).await;
            }
        )*
    };
}
