//! The file formats `kembali import` reads, parsed one order at a time from any reader, so a
//! file of any size streams through in constant memory. Every row is checked with the same
//! rules as `POST /v1/orders` ([`OrderRequest::parse`]); problems come back with the line
//! number they are on.
//!
//! Must never: hold more than one order in memory, or accept a row the API would refuse.

use crate::model::{Caller, OrderLineRequest, OrderRequest, PostOrder};
use crate::AppError;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use kembali_core::analytics::cdnow;
use kembali_core::ids::{Channel, Currency};
use std::io::{BufRead, BufReader, Read};

/// The formats `kembali import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One row per order line, with a header naming the columns (see [`CSV_COLUMNS`]).
    Csv,
    /// The CDNOW transaction format: one line per order, amounts in dollars with cents.
    Cdnow,
}

/// The CSV columns: (name, required). Rows of one order (same channel and order id) are
/// consecutive and repeat the order's fields.
pub const CSV_COLUMNS: &[(&str, bool)] = &[
    ("order_id", true),
    ("channel", true),
    ("store_id", false),
    ("customer_id", true),
    ("placed_at", true),
    ("currency", false),
    ("line_id", true),
    ("sku", true),
    ("category", true),
    ("tags", false),
    ("quantity", true),
    ("unit_price_minor", true),
    ("discount_minor", false),
];

/// Separates the tags of a line in the `tags` column (`eco|organic`).
pub const TAG_SEPARATOR: char = '|';

/// A problem on one line of the file (lines count from 1, the header included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

impl RowError {
    pub fn new(line: u64, message: impl Into<String>) -> Self {
        RowError {
            line,
            message: message.into(),
        }
    }
}

/// An order read from the file, checked, with the line it starts on.
#[derive(Debug, Clone)]
pub struct SourceOrder {
    pub line: u64,
    pub post: PostOrder,
    /// When it was placed (always given by the file).
    pub placed_at: DateTime<Utc>,
}

/// What every order of a file is checked against: the program's currency and time zone (a
/// CDNOW date is a local day), and the instant of the import (history is not in the future).
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub currency: Currency,
    pub zone: Tz,
    pub now: DateTime<Utc>,
}

pub type SourceItem = Result<SourceOrder, Vec<RowError>>;

/// The orders of a file, one at a time.
pub fn orders<R: Read + Send + 'static>(
    format: Format,
    reader: R,
    ctx: SourceContext,
) -> Box<dyn Iterator<Item = SourceItem> + Send> {
    match format {
        Format::Csv => Box::new(CsvOrders::new(reader, ctx)),
        Format::Cdnow => Box::new(CdnowOrders {
            lines: BufReader::new(reader).lines(),
            line: 0,
            ctx,
        }),
    }
}

fn check_order(ctx: &SourceContext, line: u64, post: PostOrder) -> SourceItem {
    let mut errors = Vec::new();
    if post.order.currency != ctx.currency {
        errors.push(RowError::new(
            line,
            format!(
                "currency {} is not the program's ({})",
                post.order.currency, ctx.currency
            ),
        ));
    }
    let placed_at = post.placed_at.unwrap_or(ctx.now);
    if placed_at > ctx.now {
        errors.push(RowError::new(
            line,
            format!("placed_at {placed_at} is in the future"),
        ));
    }
    if errors.is_empty() {
        Ok(SourceOrder {
            line,
            post,
            placed_at,
        })
    } else {
        Err(errors)
    }
}

// ------------------------------------------------------------------------------ CDNOW

struct CdnowOrders<R> {
    lines: std::io::Lines<BufReader<R>>,
    line: u64,
    ctx: SourceContext,
}

impl<R: Read> Iterator for CdnowOrders<R> {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        loop {
            self.line += 1;
            let text = match self.lines.next()? {
                Ok(t) => t,
                Err(e) => return Some(Err(vec![RowError::new(self.line, e.to_string())])),
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(self.order(&text));
        }
    }
}

impl<R> CdnowOrders<R> {
    /// One CDNOW line as an order of the web channel: order id `cdnow-LINE` (the line's
    /// number makes it unique and stable when the file grows), customer the full data set's
    /// id, placed at local midnight of its date, one line of `cds` units of `cd` (music)
    /// whose net is exactly the dollar value: unit price rounded up to the cent, the
    /// difference as the line's discount.
    fn order(&self, text: &str) -> SourceItem {
        let line = self.line;
        let one = |m: String| Err(vec![RowError::new(line, m)]);
        let r = match cdnow::parse_line(text, line as usize) {
            Ok(r) => r,
            Err(e) => return one(e.problem.to_string()),
        };
        if r.cds == 0 {
            return one("the number of CDs must be at least 1".into());
        }
        let qty = i64::from(r.cds);
        let unit = (r.value_minor + qty - 1) / qty;
        let req = OrderRequest {
            order_id: format!("cdnow-{line}"),
            channel: Some(Channel::Web),
            store_id: None,
            customer_id: r.customer_id.to_string(),
            currency: self.ctx.currency.to_string(),
            placed_at: Some(local_midnight(r.date, self.ctx.zone)),
            lines: vec![OrderLineRequest {
                line_id: "1".into(),
                sku: "cd".into(),
                category: "music".into(),
                tags: vec![],
                quantity: qty,
                unit_price_minor: unit,
                discount_minor: unit * qty - r.value_minor,
            }],
            redemption_id: None,
            partner_id: None,
        };
        match req.parse(&Caller::default()) {
            Ok(post) => check_order(&self.ctx, line, post),
            Err(e) => Err(problems_at(e, &[line])),
        }
    }
}

/// The first instant of `date` in `zone` (the first local time that exists on a day a
/// daylight-saving change skips midnight).
pub fn local_midnight(date: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    (0..=24 * 4)
        .map(|q| midnight + chrono::Duration::minutes(15 * q))
        .find_map(|t| zone.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// An order request's problems, each at the line of the order row it is about: fields of
/// `lines[i]` at row i's line, the order's own fields at its first row.
fn problems_at(e: AppError, lines: &[u64]) -> Vec<RowError> {
    let AppError::Invalid(problems) = e else {
        return vec![RowError::new(lines[0], e.to_string())];
    };
    problems
        .into_iter()
        .map(|p| {
            let row = p
                .field
                .strip_prefix("lines[")
                .and_then(|rest| rest.split(']').next())
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| lines.get(i))
                .copied()
                .unwrap_or(lines[0]);
            let column = p.field.rsplit('.').next().unwrap_or(&p.field).to_string();
            RowError::new(row, format!("{column}: {}", p.message))
        })
        .collect()
}

// ------------------------------------------------------------------------------ CSV

/// Column positions in the file's header.
#[derive(Default)]
struct Columns([Option<usize>; CSV_COLUMNS.len()]);

impl Columns {
    fn parse(header: &csv::StringRecord) -> Result<Columns, Vec<RowError>> {
        let mut cols = Columns::default();
        let mut errors = Vec::new();
        for (pos, name) in header.iter().enumerate() {
            match CSV_COLUMNS.iter().position(|(c, _)| *c == name.trim()) {
                Some(i) if cols.0[i].is_some() => {
                    errors.push(RowError::new(1, format!("column {name:?} appears twice")))
                }
                Some(i) => cols.0[i] = Some(pos),
                None => errors.push(RowError::new(
                    1,
                    format!(
                        "unknown column {name:?}; the columns are {}",
                        CSV_COLUMNS
                            .iter()
                            .map(|(c, _)| *c)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        for (i, (name, required)) in CSV_COLUMNS.iter().enumerate() {
            if *required && cols.0[i].is_none() {
                errors.push(RowError::new(1, format!("the column {name} is missing")));
            }
        }
        if errors.is_empty() {
            Ok(cols)
        } else {
            Err(errors)
        }
    }

    fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> &'r str {
        CSV_COLUMNS
            .iter()
            .position(|(c, _)| *c == name)
            .and_then(|i| self.0[i])
            .and_then(|pos| record.get(pos))
            .unwrap_or("")
            .trim()
    }
}

/// The fields every row of an order repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    order_id: String,
    channel: String,
    store_id: String,
    customer_id: String,
    placed_at: String,
    currency: String,
}

/// The rows of the order being read.
struct Group {
    head: Head,
    lines: Vec<u64>,
    requests: Vec<OrderLineRequest>,
    errors: Vec<RowError>,
}

struct CsvOrders<R> {
    reader: csv::Reader<R>,
    columns: Option<Columns>,
    record: csv::StringRecord,
    current: Option<Group>,
    ctx: SourceContext,
    done: bool,
}

impl<R: Read> CsvOrders<R> {
    fn new(reader: R, ctx: SourceContext) -> Self {
        CsvOrders {
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(reader),
            columns: None,
            record: csv::StringRecord::new(),
            current: None,
            ctx,
            done: false,
        }
    }

    fn head(&self, cols: &Columns) -> Head {
        let r = &self.record;
        Head {
            order_id: cols.get(r, "order_id").into(),
            channel: cols.get(r, "channel").into(),
            store_id: cols.get(r, "store_id").into(),
            customer_id: cols.get(r, "customer_id").into(),
            placed_at: cols.get(r, "placed_at").into(),
            currency: cols.get(r, "currency").into(),
        }
    }

    fn line_request(&self, cols: &Columns, line: u64) -> Result<OrderLineRequest, Vec<RowError>> {
        let r = &self.record;
        let mut errors = Vec::new();
        let mut int = |name: &str, default: Option<i64>| {
            let raw = cols.get(r, name);
            match (raw, default) {
                ("", Some(d)) => d,
                _ => raw.parse::<i64>().unwrap_or_else(|_| {
                    errors.push(RowError::new(
                        line,
                        format!("{name}: {raw:?} is not a whole number"),
                    ));
                    0
                }),
            }
        };
        let quantity = int("quantity", None);
        let unit_price_minor = int("unit_price_minor", None);
        let discount_minor = int("discount_minor", Some(0));
        let tags = cols.get(r, "tags");
        let req = OrderLineRequest {
            line_id: cols.get(r, "line_id").into(),
            sku: cols.get(r, "sku").into(),
            category: cols.get(r, "category").into(),
            tags: if tags.is_empty() {
                vec![]
            } else {
                tags.split(TAG_SEPARATOR)
                    .map(|t| t.trim().to_string())
                    .collect()
            },
            quantity,
            unit_price_minor,
            discount_minor,
        };
        if errors.is_empty() {
            Ok(req)
        } else {
            Err(errors)
        }
    }

    /// Reads rows into the current group until one starts another order (or the file
    /// ends), and returns the order that finished.
    fn step(&mut self) -> Option<SourceItem> {
        while !self.done {
            let read = self.reader.read_record(&mut self.record);
            let line = self.record.position().map_or(0, |p| p.line());
            match read {
                Err(e) => {
                    self.done = true;
                    let line = e.position().map_or(line, |p| p.line());
                    return Some(Err(vec![RowError::new(line, e.to_string())]));
                }
                Ok(false) => {
                    self.done = true;
                    return self.current.take().map(|g| self.finish(g));
                }
                Ok(true) => {}
            }
            let Some(cols) = self.columns.take() else {
                match Columns::parse(&self.record) {
                    Ok(cols) => self.columns = Some(cols),
                    Err(errors) => {
                        self.done = true;
                        return Some(Err(errors));
                    }
                }
                continue;
            };
            let out = self.row(&cols, line);
            self.columns = Some(cols);
            if out.is_some() {
                return out;
            }
        }
        None
    }

    fn row(&mut self, cols: &Columns, line: u64) -> Option<SourceItem> {
        if self.record.iter().all(|f| f.trim().is_empty()) {
            return None;
        }
        let head = self.head(cols);
        let request = self.line_request(cols, line);
        let same_order = self
            .current
            .as_ref()
            .is_some_and(|g| g.head.order_id == head.order_id && g.head.channel == head.channel);
        let mut finished = None;
        if !same_order {
            finished = self.current.take().map(|g| self.finish(g));
            self.current = Some(Group {
                head: head.clone(),
                lines: vec![],
                requests: vec![],
                errors: vec![],
            });
        }
        let group = self.current.as_mut().expect("a group was just started");
        if group.head != head {
            group.errors.push(RowError::new(
                line,
                format!(
                    "this row's order fields (customer, store, placed_at, currency) differ from the first row of order {} (line {})",
                    head.order_id, group.lines[0]
                ),
            ));
        }
        match request {
            Ok(r) => {
                group.lines.push(line);
                group.requests.push(r);
            }
            Err(mut e) => {
                if group.lines.is_empty() {
                    group.lines.push(line);
                }
                group.errors.append(&mut e);
            }
        }
        finished
    }

    fn finish(&self, g: Group) -> SourceItem {
        let first = g.lines[0];
        let mut errors = Vec::new();
        let channel = match Channel::parse(&g.head.channel) {
            Some(c) => Some(c),
            None => {
                errors.push(RowError::new(
                    first,
                    format!(
                        "channel: {:?} is not one of web, app, store, marketplace, partner",
                        g.head.channel
                    ),
                ));
                None
            }
        };
        let placed_at = match DateTime::parse_from_rfc3339(&g.head.placed_at) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(RowError::new(
                    first,
                    format!(
                        "placed_at: {:?} is not an RFC 3339 instant such as 2025-03-01T14:30:00Z",
                        g.head.placed_at
                    ),
                ));
                None
            }
        };
        if !g.errors.is_empty() {
            let mut all = g.errors;
            all.append(&mut errors);
            all.sort_by_key(|e| e.line);
            return Err(all);
        }
        let req = OrderRequest {
            order_id: g.head.order_id,
            channel,
            store_id: (!g.head.store_id.is_empty()).then_some(g.head.store_id),
            customer_id: g.head.customer_id,
            currency: if g.head.currency.is_empty() {
                self.ctx.currency.to_string()
            } else {
                g.head.currency
            },
            placed_at,
            lines: g.requests,
            redemption_id: None,
            partner_id: None,
        };
        let parsed = req.parse(&Caller::default());
        match parsed {
            Ok(post) if errors.is_empty() => check_order(&self.ctx, first, post),
            Ok(_) => Err(errors),
            Err(e) => {
                // The channel's absence is already reported in its own words.
                let mut all = errors;
                all.extend(
                    problems_at(e, &g.lines)
                        .into_iter()
                        .filter(|p| !(channel.is_none() && p.message.starts_with("channel:"))),
                );
                Err(all)
            }
        }
    }
}

impl<R: Read> Iterator for CsvOrders<R> {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        self.step()
    }
}
