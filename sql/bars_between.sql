-- Bars of the given symbols in the time window [start, end), in (symbol, ts) order.
-- Parameters: $symbols (list of VARCHAR), $start, $end (TIMESTAMPTZ).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count.
SELECT *
FROM bars
WHERE list_contains($symbols, symbol) AND ts >= $start AND ts < $end
ORDER BY symbol, ts
