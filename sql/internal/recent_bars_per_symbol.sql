-- The last $n stored bars of every symbol, in (symbol, ts) order (rebuilds hot state on reopen).
-- Parameters: $n (BIGINT).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count.
SELECT * EXCLUDE (origin)
FROM stored_bars
QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY ts DESC) <= $n
ORDER BY symbol, ts
