-- Per symbol over the trailing sessions' day files: its last session's close, high, low and volume, and its average daily volume.
-- Parameters: $sessions (BIGINT, the number of sessions the files hold); history.py fills in the list of day files (glob-escaped, quotes doubled).
-- Columns: symbol, prev_date, prev_close, prev_high, prev_low, prev_volume, sessions, avg_daily_volume.
-- A session without bars of the symbol counts as zero volume in its average.
WITH daily AS (
    SELECT symbol, date, arg_max(close, ts) AS close, max(high) AS high, min(low) AS low,
           sum(volume) AS volume
    FROM read_parquet(['{files}'], hive_partitioning = true)
    GROUP BY symbol, date
)
SELECT
    symbol,
    max(date) AS prev_date,
    arg_max(close, date) AS prev_close,
    arg_max(high, date) AS prev_high,
    arg_max(low, date) AS prev_low,
    arg_max(volume, date) AS prev_volume,
    count(*) AS sessions,
    sum(volume) / $sessions AS avg_daily_volume
FROM daily
GROUP BY symbol
ORDER BY symbol
