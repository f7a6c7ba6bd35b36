//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes plus
//! the conventions every route shares (bearer auth, problem+json errors). The document of a
//! server without a test clock leaves out `/v1/test/clock`, since that route does not exist.
//!
//! Must never: describe a route the router does not serve, or leave one out (a test
//! compares the two).

use crate::error::Problem;
use crate::handlers;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The only route that exists only on a test clock.
pub const TEST_CLOCK_PATH: &str = "/v1/test/clock";
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kembali",
        description = "Omnichannel cashback engine. Money is an integer count of minor units \
            (`*_minor`). Every error is an RFC 9457 `application/problem+json` document with a \
            stable `code` and, when a field is at fault, its path in `field`. POST requests \
            that change state accept an `Idempotency-Key`: the same key with the same body \
            returns the first answer; with another body it is a 409. Successful writes answer 200, \
            a replay included (it returns the first answer unchanged)."
    ),
    paths(
        handlers::put_customer,
        handlers::get_customer,
        handlers::get_wallet,
        handlers::get_statement,
        handlers::post_order,
        handlers::post_return,
        handlers::cancel_order,
        handlers::quote,
        handlers::redeem,
        handlers::get_redemption,
        handlers::capture,
        handlers::void,
        crate::campaigns::list_campaigns,
        crate::campaigns::create_campaign,
        crate::campaigns::preview,
        crate::campaigns::backtest,
        crate::campaigns::get_campaign,
        crate::campaigns::put_campaign,
        crate::campaigns::pause_campaign,
        crate::campaigns::resume_campaign,
        crate::campaigns::end_campaign,
        handlers::get_program,
        handlers::put_program,
        handlers::get_totals,
        handlers::get_events,
        handlers::metrics_summary,
        handlers::metrics_retention,
        handlers::metrics_ltv,
        handlers::list_experiments,
        handlers::get_experiment,
        handlers::advance_clock,
        handlers::healthz,
        handlers::readyz,
        handlers::metrics,
        handlers::openapi_json,
    ),
    components(schemas(Problem, kembali_app::error::FieldProblem)),
    modifiers(&Conventions, &MetricDefinitions),
    tags(
        (name = "customers", description = "Profiles, wallets and statements"),
        (name = "orders", description = "Sales that earn cashback, and their returns"),
        (name = "redemptions", description = "Quote, hold, capture and void"),
        (name = "campaigns", description = "Versioned cashback rules: definitions, versions, preview and backtest"),
        (name = "program", description = "Settings, totals and events"),
        (name = "metrics", description = "Measuring the program: metrics, lifetime value and \
            holdout experiments (roles admin and analyst)"),
        (name = "test", description = "Only on a server started with --test-clock"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// Adds what every route shares, so each handler declares only what is its own.
struct Conventions;

fn problem(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                crate::error::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let authenticated = path.starts_with("/v1/");
            let has_params = path.contains('{');
            for op in operations(item) {
                let has_body = op.request_body.is_some();
                let has_query = op.parameters.iter().flatten().any(|p| {
                    matches!(
                        p.parameter_in,
                        utoipa::openapi::path::ParameterIn::Query
                            | utoipa::openapi::path::ParameterIn::Header
                    )
                });
                let r = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    r.entry(status.to_string())
                        .or_insert_with(|| problem(description));
                };
                if authenticated {
                    add("401", "Missing or unknown API key (`unauthorized`)");
                    add("403", "The key's role may not do this (`forbidden`)");
                    add(
                        "503",
                        "The database is unavailable or busy; retry (`Retry-After`)",
                    );
                }
                if has_body {
                    add("400", "The body is not JSON (`malformed_json`)");
                    add("413", "The body is larger than 1 MiB (`payload_too_large`)");
                    add(
                        "415",
                        "The body is not `application/json` (`unsupported_media_type`)",
                    );
                }
                if has_body || has_params || has_query {
                    add(
                        "422",
                        "A field, path or query parameter is invalid (`invalid_request`, \
                         with `field` and `errors`), or a business rule refuses the request",
                    );
                }
                if authenticated {
                    op.security =
                        Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                }
            }
        }
    }
}

/// Puts each report's metric definitions (the core's text, the one finance reproduces the
/// numbers from) in its operation's description.
struct MetricDefinitions;

impl Modify for MetricDefinitions {
    fn modify(&self, doc: &mut Document) {
        use kembali_core::analytics::metrics as m;
        for (path, text) in [
            ("/v1/metrics/summary", m::SUMMARY_DEFINITIONS),
            ("/v1/metrics/retention", m::RETENTION_DEFINITIONS),
            ("/v1/metrics/ltv", m::LTV_DEFINITIONS),
            ("/v1/experiments/{experiment_id}", m::EXPERIMENT_DEFINITIONS),
        ] {
            if let Some(item) = doc.paths.paths.get_mut(path) {
                for op in operations(item) {
                    op.description = Some(text.to_string());
                }
            }
        }
    }
}

/// The document this server serves: with `/v1/test/clock` only on a test clock.
pub fn openapi(with_test_clock: bool) -> Document {
    let mut doc = ApiDoc::openapi();
    if !with_test_clock {
        doc.paths.paths.remove(TEST_CLOCK_PATH);
    }
    doc
}

/// [`openapi`] as JSON, built once per process for each kind of server.
pub fn document_json(with_test_clock: bool) -> String {
    static WITH: OnceLock<String> = OnceLock::new();
    static WITHOUT: OnceLock<String> = OnceLock::new();
    let cell = if with_test_clock { &WITH } else { &WITHOUT };
    cell.get_or_init(|| openapi(with_test_clock).to_json().unwrap_or_default())
        .clone()
}
