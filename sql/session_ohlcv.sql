-- Session open, high, low, close, volume and VWAP of every symbol, in symbol order.
-- Parameters: none.
-- Columns: symbol, first_ts, last_ts, bar_count, open, high, low, close, volume, vwap.
-- VWAP weights each bar's vwap (its typical price (h+l+c)/3 where the feed gave none) by volume.
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
    sum(coalesce(vwap, (high + low + close) / 3) * volume) / nullif(sum(volume), 0) AS vwap
FROM bars
GROUP BY symbol
ORDER BY symbol
