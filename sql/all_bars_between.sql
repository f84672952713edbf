-- Bars of every symbol in the time window [start, end), in (symbol, ts) order.
-- Parameters: $start, $end (TIMESTAMPTZ).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count.
SELECT *
FROM bars
WHERE ts >= $start AND ts < $end
ORDER BY symbol, ts
