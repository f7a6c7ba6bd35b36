-- Campaigns: the current state of each, every version ever made (append-only), the budget
-- each has spent, and per-customer cap usage. Orders record their partner and what each
-- campaign paid; lots record the campaign versions that produced them.

-- The row is the budget's lock: an order takes the budgets it could draw on FOR UPDATE,
-- after its customer and in id order, and debits them before it commits.
CREATE TABLE campaigns (
    id            TEXT        PRIMARY KEY,
    version       INTEGER     NOT NULL CHECK (version >= 1),
    status        TEXT        NOT NULL,
    -- The current version's definition, as JSON.
    definition    TEXT        NOT NULL,
    -- The current budget (NULL: none), and what orders have debited from it so far.
    budget        BIGINT,
    budget_spent  BIGINT      NOT NULL DEFAULT 0 CHECK (budget_spent >= 0),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CHECK (budget IS NULL OR budget_spent <= budget)
);

CREATE TABLE campaign_versions (
    campaign_id  TEXT        NOT NULL,
    version      INTEGER     NOT NULL,
    status       TEXT        NOT NULL,
    action       TEXT        NOT NULL,
    definition   TEXT        NOT NULL,
    -- JSON array of the JSON pointers that changed from the previous version.
    changes      TEXT        NOT NULL,
    actor        TEXT        NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (campaign_id, version)
);

CREATE TRIGGER campaign_versions_append_only BEFORE UPDATE OR DELETE ON campaign_versions
    FOR EACH ROW EXECUTE FUNCTION kembali_append_only();
CREATE TRIGGER campaign_versions_no_truncate BEFORE TRUNCATE ON campaign_versions
    FOR EACH STATEMENT EXECUTE FUNCTION kembali_append_only();

-- What a customer earned from a campaign in a cap period: period is day, week, month or
-- campaign; period_start is the period's first instant (the Unix epoch for campaign).
-- Written under the customer's row lock.
CREATE TABLE campaign_usage (
    customer_id   TEXT        NOT NULL,
    campaign_id   TEXT        NOT NULL,
    period        TEXT        NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    amount        BIGINT      NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (customer_id, campaign_id, period, period_start)
);

-- Constant defaults: PostgreSQL adds these columns without rewriting the tables.
ALTER TABLE orders ADD COLUMN partner_id TEXT;
ALTER TABLE orders ADD COLUMN campaigns TEXT NOT NULL DEFAULT '[]';
ALTER TABLE lots ADD COLUMN campaigns TEXT NOT NULL DEFAULT '[]';

-- First purchase and favourite category look up a customer's orders by time; backtests
-- replay history in time order.
CREATE INDEX orders_by_customer ON orders (customer_id, placed_at);
CREATE INDEX orders_by_placed ON orders (placed_at, created_at);
