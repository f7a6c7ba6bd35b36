-- Kembali on PostgreSQL, first schema. Money is BIGINT minor units; instants are
-- TIMESTAMPTZ (microseconds, like the engine's clock).

CREATE TABLE program (
    id          INTEGER     PRIMARY KEY CHECK (id = 1),
    settings    TEXT        NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Every settings change, for audit.
CREATE TABLE program_versions (
    version     BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    settings    TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE idempotency (
    scope        TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    request_hash TEXT        NOT NULL,
    response     TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE customers (
    id          TEXT        PRIMARY KEY,
    email       TEXT,
    phone       TEXT,
    birthday    DATE,
    segments    TEXT[]      NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    -- Cached from the postings (checked by the conformance suite). The row is the wallet's
    -- lock: every job that changes a wallet takes it FOR UPDATE first.
    pending     BIGINT      NOT NULL DEFAULT 0 CHECK (pending >= 0),
    available   BIGINT      NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        BIGINT      NOT NULL DEFAULT 0 CHECK (held >= 0),
    debt        BIGINT      NOT NULL DEFAULT 0 CHECK (debt >= 0)
);

CREATE TABLE orders (
    channel        TEXT        NOT NULL,
    order_id       TEXT        NOT NULL,
    customer_id    TEXT        NOT NULL,
    store_id       TEXT,
    currency       TEXT        NOT NULL,
    placed_at      TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    redemption_id  TEXT,
    redeemed       BIGINT      NOT NULL,
    cashback       BIGINT      NOT NULL,
    total          BIGINT      NOT NULL,
    lot_id         BIGINT,
    available_at   TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ,
    request_hash   TEXT        NOT NULL,
    -- Order ids are unique per channel; id-first so a return naming only the order id
    -- finds its channel(s) through the primary key.
    PRIMARY KEY (order_id, channel)
);

CREATE TABLE order_lines (
    channel       TEXT    NOT NULL,
    order_id      TEXT    NOT NULL,
    line_no       INTEGER NOT NULL,
    line_id       TEXT    NOT NULL,
    sku           TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    tags          TEXT[]  NOT NULL,
    quantity      BIGINT  NOT NULL,
    unit_price    BIGINT  NOT NULL,
    discount      BIGINT  NOT NULL,
    net           BIGINT  NOT NULL,
    redeemed      BIGINT  NOT NULL,
    cashback      BIGINT  NOT NULL,
    returned_qty  BIGINT  NOT NULL,
    clawed_back   BIGINT  NOT NULL,
    restored      BIGINT  NOT NULL,
    explanation   TEXT    NOT NULL,
    rules         TEXT    NOT NULL,
    PRIMARY KEY (channel, order_id, line_no)
);

CREATE TABLE returns (
    channel       TEXT        NOT NULL,
    order_id      TEXT        NOT NULL,
    return_id     TEXT        NOT NULL,
    request_hash  TEXT        NOT NULL,
    receipt       TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, order_id, return_id)
);

CREATE TABLE lots (
    id             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id    TEXT        NOT NULL,
    order_channel  TEXT,
    order_id       TEXT,
    amount         BIGINT      NOT NULL CHECK (amount > 0),
    remaining      BIGINT      NOT NULL CHECK (remaining >= 0),
    available_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    state          TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expiry_warned  BOOLEAN     NOT NULL
);
CREATE INDEX lots_open_by_customer ON lots (customer_id)
    WHERE state IN ('pending', 'available') AND remaining > 0;
CREATE INDEX lots_pending_by_due ON lots (available_at) WHERE state = 'pending';
CREATE INDEX lots_open_by_expiry ON lots (expires_at)
    WHERE state IN ('pending', 'available') AND remaining > 0;

CREATE TABLE redemptions (
    id              TEXT        PRIMARY KEY,
    customer_id     TEXT        NOT NULL,
    channel         TEXT        NOT NULL,
    store_id        TEXT,
    state           TEXT        NOT NULL,
    amount          BIGINT      NOT NULL,
    captured        BIGINT      NOT NULL,
    order_total     BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    request_hash    TEXT        NOT NULL,
    order_channel   TEXT,
    order_id        TEXT,
    allocations     TEXT        NOT NULL
);
CREATE INDEX redemptions_held_by_customer ON redemptions (customer_id) WHERE state = 'held';
CREATE INDEX redemptions_held_by_expiry ON redemptions (expires_at) WHERE state = 'held';

-- The ledger: append-only. Each journal row is one balanced entry; its postings sum to zero.
-- seq comes from an identity: increasing in commit order per customer because every entry
-- of a customer is written under that customer's row lock.
CREATE TABLE journal (
    seq            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    customer_id    TEXT        NOT NULL,
    asset          TEXT        NOT NULL,
    kind           TEXT        NOT NULL,
    explanation    TEXT        NOT NULL,
    order_channel  TEXT,
    order_id       TEXT,
    redemption_id  TEXT,
    return_id      TEXT,
    lot_id         BIGINT
);
CREATE INDEX journal_by_customer ON journal (customer_id, seq);

CREATE TABLE postings (
    seq      BIGINT  NOT NULL REFERENCES journal (seq),
    idx      INTEGER NOT NULL,
    account  TEXT    NOT NULL,
    amount   BIGINT  NOT NULL,
    PRIMARY KEY (seq, idx)
);

CREATE FUNCTION kembali_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION kembali_append_only();
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION kembali_append_only();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION kembali_append_only();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION kembali_append_only();

-- The outbox. Appends take a transaction-scoped advisory lock so that events commit in seq
-- order and a reader paging by seq never skips one committed late.
CREATE TABLE events (
    seq          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL,
    kind         TEXT        NOT NULL,
    customer_id  TEXT,
    payload      JSONB       NOT NULL
);

CREATE TABLE api_keys (
    secret_sha256  TEXT        PRIMARY KEY,
    id             TEXT        NOT NULL UNIQUE,
    role           TEXT        NOT NULL,
    channel        TEXT,
    store_id       TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);
