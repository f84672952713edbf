-- One day of stored bars (or a whole session) merged into the day's archived file, sorted by (symbol, ts), as archive.py writes them to Parquet.
-- Parameters: $start, $end (TIMESTAMPTZ); $archived (the day's archived file, glob-escaped).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, origin: the archived bars whose (symbol, ts) the session does not hold, and the session's bars of the day.
SELECT symbol, ts, open, high, low, close, volume, vwap, trade_count, origin
FROM read_parquet($archived, hive_partitioning = false) AS archived
WHERE NOT EXISTS (
    SELECT 1 FROM session_bars AS s WHERE s.symbol = archived.symbol AND s.ts = archived.ts
)
UNION ALL
SELECT * REPLACE (origin::VARCHAR AS origin) FROM session_bars WHERE ts >= $start AND ts < $end
ORDER BY symbol, ts
