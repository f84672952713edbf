-- The session metrics' running totals of the given symbols (NULL: every symbol) over every
-- bar, flushed or not, in symbol order (restores metrics on reopening; recomputes stale ones).
-- Parameters: $symbols (list of VARCHAR, or NULL).
-- Columns: symbol, first_ts, last_ts, bar_count, open, high, low, close, volume, pv.
-- pv sums each bar's price (its vwap, else (high + low + close) / 3) x volume: session_ohlcv's
-- VWAP is pv / volume.
SELECT
    symbol,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    count(*) AS bar_count,
    arg_min(open, ts) AS open,
    max(high) AS high,
    min(low) AS low,
    arg_max(close, ts) AS close,
    sum(volume) AS volume,
    sum(coalesce(vwap, (high + low + close) / 3) * volume) AS pv
FROM bars
WHERE $symbols IS NULL OR list_contains($symbols, symbol)
GROUP BY symbol
ORDER BY symbol
