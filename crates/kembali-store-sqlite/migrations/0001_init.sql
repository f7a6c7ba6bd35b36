-- Kembali on SQLite, first schema. Money is INTEGER minor units; instants are INTEGER
-- microseconds since the Unix epoch (UTC).

CREATE TABLE program (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    settings    TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Every settings change, for audit.
CREATE TABLE program_versions (
    version     INTEGER PRIMARY KEY AUTOINCREMENT,
    settings    TEXT    NOT NULL,
    at          INTEGER NOT NULL
);

CREATE TABLE idempotency (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    response     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

CREATE TABLE customers (
    id          TEXT    PRIMARY KEY,
    email       TEXT,
    phone       TEXT,
    birthday    TEXT,
    segments    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- Cached from the postings (checked by the conformance suite).
    pending     INTEGER NOT NULL DEFAULT 0 CHECK (pending >= 0),
    available   INTEGER NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    debt        INTEGER NOT NULL DEFAULT 0 CHECK (debt >= 0)
) WITHOUT ROWID;

CREATE TABLE orders (
    channel        TEXT    NOT NULL,
    order_id       TEXT    NOT NULL,
    customer_id    TEXT    NOT NULL,
    store_id       TEXT,
    currency       TEXT    NOT NULL,
    placed_at      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    redemption_id  TEXT,
    redeemed       INTEGER NOT NULL,
    cashback       INTEGER NOT NULL,
    total          INTEGER NOT NULL,
    lot_id         INTEGER,
    available_at   INTEGER,
    expires_at     INTEGER,
    request_hash   TEXT    NOT NULL,
    -- Order ids are unique per channel; keyed id-first so that a return naming only the
    -- order id finds its channel(s) through the primary key.
    PRIMARY KEY (order_id, channel)
);

CREATE TABLE order_lines (
    channel       TEXT    NOT NULL,
    order_id      TEXT    NOT NULL,
    line_no       INTEGER NOT NULL,
    line_id       TEXT    NOT NULL,
    sku           TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    tags          TEXT    NOT NULL,
    quantity      INTEGER NOT NULL,
    unit_price    INTEGER NOT NULL,
    discount      INTEGER NOT NULL,
    net           INTEGER NOT NULL,
    redeemed      INTEGER NOT NULL,
    cashback      INTEGER NOT NULL,
    returned_qty  INTEGER NOT NULL,
    clawed_back   INTEGER NOT NULL,
    restored      INTEGER NOT NULL,
    explanation   TEXT    NOT NULL,
    rules         TEXT    NOT NULL,
    PRIMARY KEY (channel, order_id, line_no)
) WITHOUT ROWID;

CREATE TABLE returns (
    channel       TEXT    NOT NULL,
    order_id      TEXT    NOT NULL,
    return_id     TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    receipt       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (channel, order_id, return_id)
) WITHOUT ROWID;

CREATE TABLE lots (
    id             INTEGER PRIMARY KEY,
    customer_id    TEXT    NOT NULL,
    order_channel  TEXT,
    order_id       TEXT,
    amount         INTEGER NOT NULL CHECK (amount > 0),
    remaining      INTEGER NOT NULL CHECK (remaining >= 0),
    available_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expiry_warned  INTEGER NOT NULL
);
CREATE INDEX lots_open_by_customer ON lots (customer_id)
    WHERE state IN ('pending', 'available') AND remaining > 0;
CREATE INDEX lots_pending_by_due ON lots (available_at) WHERE state = 'pending';
CREATE INDEX lots_open_by_expiry ON lots (expires_at)
    WHERE state IN ('pending', 'available') AND remaining > 0;

CREATE TABLE redemptions (
    id              TEXT    PRIMARY KEY,
    customer_id     TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    store_id        TEXT,
    state           TEXT    NOT NULL,
    amount          INTEGER NOT NULL,
    captured        INTEGER NOT NULL,
    order_total     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    request_hash    TEXT    NOT NULL,
    order_channel   TEXT,
    order_id        TEXT,
    allocations     TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX redemptions_held_by_customer ON redemptions (customer_id) WHERE state = 'held';
CREATE INDEX redemptions_held_by_expiry ON redemptions (expires_at) WHERE state = 'held';

-- The ledger: append-only. Each journal row is one balanced entry; its postings sum to zero.
-- No AUTOINCREMENT: rows are never deleted (the triggers below), so the rowid only grows.
CREATE TABLE journal (
    seq            INTEGER PRIMARY KEY,
    at             INTEGER NOT NULL,
    customer_id    TEXT    NOT NULL,
    asset          TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    explanation    TEXT    NOT NULL,
    order_channel  TEXT,
    order_id       TEXT,
    redemption_id  TEXT,
    return_id      TEXT,
    lot_id         INTEGER
);
CREATE INDEX journal_by_customer ON journal (customer_id, seq);

CREATE TABLE postings (
    seq      INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    account  TEXT    NOT NULL,
    amount   INTEGER NOT NULL,
    PRIMARY KEY (seq, idx)
) WITHOUT ROWID;

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;
CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    customer_id  TEXT,
    payload      TEXT    NOT NULL
);

CREATE TABLE api_keys (
    secret_sha256  TEXT PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    channel        TEXT,
    store_id       TEXT,
    created_at     INTEGER NOT NULL
) WITHOUT ROWID;
