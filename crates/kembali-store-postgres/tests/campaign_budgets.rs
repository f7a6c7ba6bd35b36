//! A campaign budget under concurrent orders on two replicas: the budget row's lock makes
//! every order see what the others spent, so the budget is spent exactly, never more.

use futures::future::join_all;
use kembali_app::model::Caller;
use kembali_app::store::{job, CampaignAction, CampaignStatus, OrderKey, Store};
use kembali_app::Engine;
use kembali_core::ids::{CampaignId, Channel, OrderId};
use kembali_store_postgres::testing::TestDatabase;
use kembali_store_postgres::{PgConfig, PgStore};
use kembali_store_tests::harness::{campaign_version, order_request, Harness};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_on_two_replicas_spend_a_budget_exactly() {
    let db = TestDatabase::create().await;
    let replica = || PgStore::connect(&db.url, PgConfig::default());
    let h = Harness::new(replica().await.expect("connect")).await;
    let other = Engine::new(Arc::new(replica().await.expect("connect")), h.clock.clone());

    // 10 % on every order, with a budget of 100,00: ten orders of 100,00 exhaust it.
    let promo = campaign_version(
        "promo",
        1,
        CampaignAction::Create,
        CampaignStatus::Active,
        Some(10_000),
        h.clock_now(),
    );
    h.engine
        .store()
        .write(job(move |tx| {
            Box::pin(async move { Ok(tx.put_campaign_version(&promo).await?) })
        }))
        .await
        .unwrap();

    let n = 64;
    let orders = (0..n).map(|i| {
        let engine = if i % 2 == 0 {
            h.engine.clone()
        } else {
            other.clone()
        };
        let req = order_request(
            Channel::Web,
            None,
            &format!("O{i}"),
            &format!("c{}", i % 32),
            &[("1", "toys", 1, 10_000)],
            None,
        );
        async move {
            engine
                .post_order(req.parse(&Caller::default())?, None)
                .await
        }
    });
    for r in join_all(orders).await {
        r.expect("every order is taken");
    }

    let (spent, paid) = h
        .engine
        .store()
        .read(job(move |tx| {
            Box::pin(async move {
                let spent = tx
                    .campaign(&CampaignId::parse("promo").unwrap(), false)
                    .await?
                    .expect("promo")
                    .budget_spent_minor;
                let mut paid = Vec::new();
                for i in 0..n {
                    let key = OrderKey {
                        channel: Channel::Web,
                        order_id: OrderId::parse(format!("O{i}")).unwrap(),
                    };
                    let o = tx.order(&key).await?.expect("order");
                    paid.extend(
                        o.campaigns
                            .iter()
                            .filter(|c| c.campaign_id.as_str() == "promo" && c.amount_minor > 0)
                            .map(|c| c.amount_minor),
                    );
                }
                Ok((spent, paid))
            })
        }))
        .await
        .unwrap();
    assert_eq!(spent, 10_000);
    assert_eq!(
        paid,
        vec![1_000; 10],
        "exactly ten orders paid, never eleven"
    );
    let customers: Vec<String> = (0..32).map(|i| format!("c{i}")).collect();
    let customers: Vec<&str> = customers.iter().map(|c| c.as_str()).collect();
    h.assert_invariants(&customers).await;
}
