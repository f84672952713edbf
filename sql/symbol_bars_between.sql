-- Bars of one symbol in the time window [start, end), in ts order.
-- Parameters: $symbol (VARCHAR), $start, $end (TIMESTAMPTZ).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count.
SELECT *
FROM bars
WHERE symbol = $symbol AND ts >= $start AND ts < $end
ORDER BY ts
