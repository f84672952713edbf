-- The latest bar of every symbol, in symbol order.
-- Parameters: none.
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count.
SELECT *
FROM bars
QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY ts DESC) = 1
ORDER BY symbol
