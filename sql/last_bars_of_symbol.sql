-- The last $n bars of one symbol, in ts order (serves reads past the in-memory window).
-- Parameters: $symbol (VARCHAR), $n (BIGINT).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count.
SELECT * FROM (
    SELECT * FROM bars WHERE symbol = $symbol ORDER BY ts DESC LIMIT $n
) ORDER BY ts
