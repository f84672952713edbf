-- export_day_merged for a day archived before bars recorded their origin: its archived bars were live.
-- Parameters: $start, $end (TIMESTAMPTZ); $archived (the day's archived file, glob-escaped).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, origin.
SELECT symbol, ts, open, high, low, close, volume, vwap, trade_count, 'live' AS origin
FROM read_parquet($archived, hive_partitioning = false) AS archived
WHERE NOT EXISTS (
    SELECT 1 FROM session_bars AS s WHERE s.symbol = archived.symbol AND s.ts = archived.ts
)
UNION ALL
SELECT * REPLACE (origin::VARCHAR AS origin) FROM session_bars WHERE ts >= $start AND ts < $end
ORDER BY symbol, ts
