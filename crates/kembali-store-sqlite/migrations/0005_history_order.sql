-- The backtest reads history in (placed_at, created_at, channel, order_id) order, page by
-- page: with the whole key in the index the pages come out of it already in order, with no
-- sort of their own, and with the other columns it reads the index covers the read (no
-- visit to the order's row).
DROP INDEX orders_by_placed;
CREATE INDEX orders_by_placed ON orders (placed_at, created_at, channel, order_id, customer_id,
    store_id, currency, redeemed, cashback, partner_id);
