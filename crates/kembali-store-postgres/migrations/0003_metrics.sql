-- Measuring the program (issue 5): holdout assignments, and indexes for the metric reads.

-- A customer's arm in an experiment (`program`, later `campaign:<id>`), recorded when the
-- customer is first seen at earn time. The first record wins: rows are never updated.
CREATE TABLE experiment_assignments (
    experiment_id  TEXT        NOT NULL,
    customer_id    TEXT        NOT NULL,
    arm            TEXT        NOT NULL CHECK (arm IN ('treatment', 'holdout')),
    -- The holdout share (basis points) in force when the customer was assigned.
    share_bp       INTEGER     NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (experiment_id, customer_id)
);

-- Returned lines are a few percent of all lines: the returned value of every order is
-- summed from this index alone.
CREATE INDEX order_lines_returned
    ON order_lines (channel, order_id, net, quantity, returned_qty, clawed_back)
    WHERE returned_qty > 0;

-- Expiries (breakage), and the entries after a date (liability at that date), by kind and
-- instant; with the customer, so that neither read visits the journal's rows.
CREATE INDEX journal_by_kind_at ON journal (kind, at, customer_id);
