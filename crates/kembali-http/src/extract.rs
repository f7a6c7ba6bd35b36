//! Extractors that turn raw request parts into typed values or a problem+json error: JSON
//! bodies (with the serde path of the field at fault), path ids parsed into core newtypes,
//! query parameters, and the `Idempotency-Key` header.
//!
//! Must never: let axum's plain-text rejections reach a client; accept an unknown field or
//! query parameter silently; panic on anything a client sends.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chrono::NaiveDate;
use kembali_app::engine::{request_hash, Idem};
use kembali_core::analytics::metrics::Filter;
use kembali_core::ids::{
    CampaignId, Channel, CustomerId, ExperimentId, IdError, OrderId, RedemptionId, Segment, StoreId,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashSet;

/// `Idempotency-Key` values: long enough for a UUID with a prefix, short enough to index.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

// ---------------------------------------------------------------- JSON bodies

/// A JSON body, required, with `Content-Type: application/json`.
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out: an empty body or `null` reads as `T::default()`.
pub struct OptionalJson<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    "the request body could not be read",
                )
            }
        })
}

/// Deserializes JSON, telling a syntax error (400) from a well-formed body whose content
/// does not fit the request type (422 with the path of the field at fault).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        data_error(&path, &inner)
    })?;
    de.end()
        .map_err(|e| ApiError::malformed_json(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn data_error(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    if !matches!(e.classify(), Category::Data) {
        return ApiError::malformed_json(format!("the body is not valid JSON: {e}"));
    }
    let message = e.to_string();
    // serde's messages end with " at line L column C", which is noise once the field is named.
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    let named = backticked(&message);
    let (code, field) = if message.starts_with("missing field") {
        ("required", join_path(path, named))
    } else if message.starts_with("unknown field") {
        ("unknown_field", join_path(path, named))
    } else {
        ("invalid_type", join_path(path, None))
    };
    ApiError::invalid(field, code, message)
}

/// The first name between backticks in a serde message (`missing field `order_id``).
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// `lines[0]` + `quantity` = `lines[0].quantity`; serde_path_to_error writes the root as `.`.
fn join_path(path: &str, name: Option<&str>) -> String {
    let path = if path == "." { "" } else { path };
    match (path.is_empty(), name) {
        (_, None) if path.is_empty() => "body".to_string(),
        (_, None) => path.to_string(),
        (true, Some(n)) => n.to_string(),
        (false, Some(n)) if path.ends_with(n) => path.to_string(),
        (false, Some(n)) => format!("{path}.{n}"),
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json {
            return Err(ApiError::unsupported_media_type());
        }
        parse_json::<Option<T>>(&bytes).map(|v| OptionalJson(v.unwrap_or_default()))
    }
}

// ---------------------------------------------------------------- path ids

/// An id that appears as the one parameter of a route's path.
pub trait PathId: Sized {
    /// The parameter's name in the route template, reported as the field at fault.
    const FIELD: &'static str;
    fn parse(raw: String) -> Result<Self, IdError>;
}

impl PathId for CustomerId {
    const FIELD: &'static str = "customer_id";
    fn parse(raw: String) -> Result<Self, IdError> {
        CustomerId::parse(raw)
    }
}

impl PathId for OrderId {
    const FIELD: &'static str = "order_id";
    fn parse(raw: String) -> Result<Self, IdError> {
        OrderId::parse(raw)
    }
}

impl PathId for ExperimentId {
    const FIELD: &'static str = "experiment_id";
    fn parse(raw: String) -> Result<Self, IdError> {
        ExperimentId::parse(raw)
    }
}

impl PathId for RedemptionId {
    const FIELD: &'static str = "redemption_id";
    fn parse(raw: String) -> Result<Self, IdError> {
        RedemptionId::parse(raw)
    }
}

/// A path parameter parsed into its core newtype.
pub struct Id<T>(pub T);

impl<T: PathId, S: Send + Sync> FromRequestParts<S> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::invalid(T::FIELD, "invalid_id", "not a valid UTF-8 path segment")
            })?;
        T::parse(raw)
            .map(Id)
            .map_err(|e| ApiError::invalid(T::FIELD, "invalid_id", e.to_string()))
    }
}

// ---------------------------------------------------------------- query parameters

/// A set of query parameters, parsed by hand so every problem is a 422 naming the parameter.
pub trait QueryParams: Default {
    const NAMES: &'static [&'static str];
    fn set(&mut self, name: &str, value: String) -> Result<(), ApiError>;
}

/// `?cursor=&limit=` of a paged list.
#[derive(Debug, Default)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl QueryParams for PageQuery {
    const NAMES: &'static [&'static str] = &["cursor", "limit"];
    fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        match name {
            "cursor" => self.cursor = Some(value),
            _ => {
                let n = value.parse::<usize>().map_err(|_| {
                    ApiError::invalid("limit", "invalid_number", "must be a positive whole number")
                })?;
                self.limit = Some(n);
            }
        }
        Ok(())
    }
}

/// `?channel=` naming an order's channel.
#[derive(Debug, Default)]
pub struct ChannelQuery {
    pub channel: Option<Channel>,
}

impl QueryParams for ChannelQuery {
    const NAMES: &'static [&'static str] = &["channel"];
    fn set(&mut self, _name: &str, value: String) -> Result<(), ApiError> {
        self.channel = Some(channel_param(&value)?);
        Ok(())
    }
}

/// A channel named in a query parameter `channel`.
fn channel_param(value: &str) -> Result<Channel, ApiError> {
    Channel::parse(value).ok_or_else(|| {
        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        ApiError::invalid(
            "channel",
            "invalid_channel",
            format!("must be one of {}", names.join(", ")),
        )
    })
}

/// `?from=&to=&channel=&store=&segment=&campaign=` of a metrics report.
#[derive(Debug, Default)]
pub struct MetricsQuery(pub Filter);

impl QueryParams for MetricsQuery {
    const NAMES: &'static [&'static str] =
        &["from", "to", "channel", "store", "segment", "campaign"];
    fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        let f = &mut self.0;
        let id_problem =
            |field: &str, e: IdError| ApiError::invalid(field, "invalid_id", e.to_string());
        match name {
            "from" | "to" => {
                let date = NaiveDate::parse_from_str(&value, "%Y-%m-%d")
                    .ok()
                    .filter(|_| value.len() == 10)
                    .ok_or_else(|| {
                        ApiError::invalid(name, "invalid_date", "must be a date YYYY-MM-DD")
                    })?;
                if name == "from" {
                    f.from = Some(date);
                } else {
                    f.to = Some(date);
                }
            }
            "channel" => f.channel = Some(channel_param(&value)?),
            "store" => f.store = Some(StoreId::parse(value).map_err(|e| id_problem("store", e))?),
            "campaign" => {
                f.campaign = Some(CampaignId::parse(value).map_err(|e| id_problem("campaign", e))?)
            }
            _ => f.segment = Some(Segment::parse(value).map_err(|e| id_problem("segment", e))?),
        }
        Ok(())
    }
}

/// Query parameters of type `T`; unknown or repeated parameters are refused.
pub struct Query<T>(pub T);

impl<T: QueryParams, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut out = T::default();
        let mut seen = HashSet::new();
        let raw = parts.uri.query().unwrap_or("");
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            let Some(known) = T::NAMES.iter().find(|n| **n == name) else {
                return Err(ApiError::invalid(
                    name.chars().take(64).collect::<String>(),
                    "unknown_parameter",
                    format!("accepted query parameters: {}", T::NAMES.join(", ")),
                ));
            };
            if !seen.insert(*known) {
                return Err(ApiError::invalid(
                    *known,
                    "repeated_parameter",
                    "give this parameter once",
                ));
            }
            out.set(known, value.into_owned())?;
        }
        Ok(Query(out))
    }
}

// ---------------------------------------------------------------- Idempotency-Key

/// The `Idempotency-Key` header, if sent: 1 to 128 printable ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    /// The engine's view of the key: scoped to the API key, bound to this exact request.
    pub fn idem<T: Serialize>(self, scope: &str, what: &str, request: &T) -> Option<Idem> {
        self.0.map(|key| Idem {
            scope: scope.to_string(),
            key,
            request_hash: request_hash(what, request),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(IdempotencyKey(None));
        };
        if values.next().is_some() {
            return Err(ApiError::invalid(
                IDEMPOTENCY_KEY,
                "repeated_header",
                "send one Idempotency-Key",
            ));
        }
        let bytes = value.as_bytes();
        let printable = bytes.iter().all(|b| (0x20..0x7f).contains(b));
        if bytes.is_empty() || bytes.len() > MAX_IDEMPOTENCY_KEY_LEN || !printable {
            return Err(ApiError::invalid(
                IDEMPOTENCY_KEY,
                "invalid_idempotency_key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"),
            ));
        }
        // Checked printable ASCII above, so this is the same bytes as a string.
        let key = String::from_utf8_lossy(bytes).into_owned();
        Ok(IdempotencyKey(Some(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kembali_app::model::{OrderRequest, ProgramRequest};

    fn err<T: DeserializeOwned>(body: &str) -> ApiError {
        match parse_json::<T>(body.as_bytes()) {
            Ok(_) => panic!("{body} parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_syntax_error_is_malformed_json() {
        let e = err::<ProgramRequest>("{\"base_rate_bp\": ");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "malformed_json");
        let trailing = err::<ProgramRequest>("{} {}");
        assert_eq!(trailing.code, "malformed_json");
    }

    #[test]
    fn a_wrong_type_names_the_nested_field() {
        let body = r#"{"order_id":"o1","customer_id":"c1","currency":"BRL",
            "lines":[{"line_id":"l1","sku":"s","category":"c","quantity":"two","unit_price_minor":1}]}"#;
        let e = err::<OrderRequest>(body);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("lines[0].quantity"));
        assert_eq!(e.errors[0].code, "invalid_type");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let unknown = err::<ProgramRequest>(r#"{"bogus": 1}"#);
        assert_eq!(unknown.field.as_deref(), Some("bogus"));
        assert_eq!(unknown.errors[0].code, "unknown_field");
        let missing = err::<OrderRequest>(r#"{"order_id":"o1"}"#);
        assert_eq!(missing.field.as_deref(), Some("customer_id"));
        assert_eq!(missing.errors[0].code, "required");
        let nested = err::<OrderRequest>(
            r#"{"order_id":"o1","customer_id":"c1","currency":"BRL","lines":[{"line_id":"l1","sku":"s","category":"c","quantity":1,"unit_price_minor":1,"colour":"red"}]}"#,
        );
        assert_eq!(nested.field.as_deref(), Some("lines[0].colour"));
    }

    #[test]
    fn json_content_types_with_parameters_and_suffixes_count_as_json() {
        let mut h = HeaderMap::new();
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/jsonx", false),
        ] {
            h.insert(CONTENT_TYPE, value.parse().expect("a header value"));
            assert_eq!(is_json(&h), ok, "{value}");
        }
    }
}
