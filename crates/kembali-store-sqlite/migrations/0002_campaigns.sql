-- Campaigns: the current state of each, every version ever made (append-only), the budget
-- each has spent, and per-customer cap usage. Orders record their partner and what each
-- campaign paid; lots record the campaign versions that produced them.

CREATE TABLE campaigns (
    id            TEXT    PRIMARY KEY,
    version       INTEGER NOT NULL CHECK (version >= 1),
    status        TEXT    NOT NULL,
    -- The current version's definition, as JSON.
    definition    TEXT    NOT NULL,
    -- The current budget (NULL: none), and what orders have debited from it so far.
    budget        INTEGER,
    budget_spent  INTEGER NOT NULL DEFAULT 0 CHECK (budget_spent >= 0),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK (budget IS NULL OR budget_spent <= budget)
) WITHOUT ROWID;

CREATE TABLE campaign_versions (
    campaign_id  TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    definition   TEXT    NOT NULL,
    changes      TEXT    NOT NULL,
    actor        TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, version)
) WITHOUT ROWID;

CREATE TRIGGER campaign_versions_no_update BEFORE UPDATE ON campaign_versions
BEGIN
    SELECT RAISE(ABORT, 'campaign versions are immutable');
END;
CREATE TRIGGER campaign_versions_no_delete BEFORE DELETE ON campaign_versions
BEGIN
    SELECT RAISE(ABORT, 'campaign versions are immutable');
END;

-- What a customer earned from a campaign in a cap period: period is day, week, month or
-- campaign; period_start is the period's first instant (0 for campaign).
CREATE TABLE campaign_usage (
    customer_id   TEXT    NOT NULL,
    campaign_id   TEXT    NOT NULL,
    period        TEXT    NOT NULL,
    period_start  INTEGER NOT NULL,
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (customer_id, campaign_id, period, period_start)
) WITHOUT ROWID;

ALTER TABLE orders ADD COLUMN partner_id TEXT;
ALTER TABLE orders ADD COLUMN campaigns TEXT NOT NULL DEFAULT '[]';
ALTER TABLE lots ADD COLUMN campaigns TEXT NOT NULL DEFAULT '[]';

-- First purchase and favourite category look up a customer's orders by time; backtests
-- replay history in time order.
CREATE INDEX orders_by_customer ON orders (customer_id, placed_at);
CREATE INDEX orders_by_placed ON orders (placed_at, created_at);
