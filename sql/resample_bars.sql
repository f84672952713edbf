-- Every symbol's bars resampled to $minutes-minute bars (buckets aligned to the hour), in (symbol, ts) order.
-- Parameters: $minutes (INTEGER).
-- Columns: symbol, ts (bucket start), open, high, low, close, volume, vwap, trade_count.
SELECT
    symbol,
    bucket AS ts,
    arg_min(open, bar_ts) AS open,
    max(high) AS high,
    min(low) AS low,
    arg_max(close, bar_ts) AS close,
    sum(volume) AS volume,
    sum(coalesce(vwap, (high + low + close) / 3) * volume) / nullif(sum(volume), 0) AS vwap,
    sum(trade_count)::BIGINT AS trade_count
FROM (
    SELECT
        *,
        ts AS bar_ts,
        time_bucket(to_minutes($minutes::INTEGER), ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket
    FROM bars
)
GROUP BY symbol, bucket
ORDER BY symbol, bucket
