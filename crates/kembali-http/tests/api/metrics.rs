//! `/metrics` counts requests by route template and status.

use crate::common::TestApp;

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let app = TestApp::new().await;
    app.get("/v1/customers/metrics-probe/wallet", &app.admin)
        .await
        .problem(404, "customer_not_found");
    let res = app.call("GET", "/metrics", None, None).await;
    assert_eq!(res.status, 200);
    assert!(res.content_type().starts_with("text/plain"));
    let counted = res.text.lines().any(|l| {
        l.starts_with("http_requests_total{")
            && l.contains("route=\"/v1/customers/{customer_id}/wallet\"")
            && l.contains("status=\"404\"")
            && l.contains("method=\"GET\"")
    });
    assert!(counted, "{}", res.text);
    assert!(
        res.text.contains("http_request_duration_seconds"),
        "{}",
        res.text
    );
    assert!(
        !res.text.contains("metrics-probe"),
        "raw paths must not become labels"
    );
}

#[tokio::test]
async fn unmatched_paths_share_one_label() {
    let app = TestApp::new().await;
    app.call("GET", "/no/such/path-xyz", None, None)
        .await
        .problem(404, "not_found");
    let res = app.call("GET", "/metrics", None, None).await;
    assert!(res.text.contains("route=\"unmatched\""), "{}", res.text);
    assert!(!res.text.contains("path-xyz"));
}
