-- Copies one day of stored bars merged into the day's archived file, sorted by (symbol, ts), to a new Parquet file.
-- Parameters: $start, $end (TIMESTAMPTZ); $archived (the day's archived file, glob-escaped); the target path and codec are filled in by archive.py.
-- Columns: none (writes symbol, ts, open, high, low, close, volume, vwap, trade_count: the archived bars whose (symbol, ts) the session does not hold, and the session's bars of the day).
-- nullif keeps vwap and trade_count optional, as export_day does (one schema for every day file).
COPY (
    SELECT symbol, ts, open, high, low, close, volume,
           nullif(vwap, 'NaN'::DOUBLE) AS vwap, nullif(trade_count, -1) AS trade_count
    FROM read_parquet($archived, hive_partitioning = false) AS archived
    WHERE NOT EXISTS (
        SELECT 1 FROM session_bars AS s WHERE s.symbol = archived.symbol AND s.ts = archived.ts
    )
    UNION ALL
    SELECT symbol, ts, open, high, low, close, volume,
           nullif(vwap, 'NaN'::DOUBLE) AS vwap, nullif(trade_count, -1) AS trade_count
    FROM session_bars WHERE ts >= $start AND ts < $end
    ORDER BY symbol, ts
) TO '{path}' (FORMAT parquet, COMPRESSION '{compression}')
