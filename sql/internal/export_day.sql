-- Copies one day of stored bars, sorted by (symbol, ts), to a zstd Parquet file.
-- Parameters: $start, $end (TIMESTAMPTZ); the target path and codec are filled in by archive.py.
-- Columns: none (writes symbol, ts, open, high, low, close, volume, vwap, trade_count).
-- nullif keeps vwap and trade_count optional in every file: DuckDB marks a column required when
-- it can prove it holds no null, which would give day files of one archive different schemas.
-- (No stored vwap is NaN and no trade_count is -1: validation refuses both.)
COPY (
    SELECT symbol, ts, open, high, low, close, volume,
           nullif(vwap, 'NaN'::DOUBLE) AS vwap, nullif(trade_count, -1) AS trade_count
    FROM session_bars WHERE ts >= $start AND ts < $end ORDER BY symbol, ts
) TO '{path}' (FORMAT parquet, COMPRESSION {compression})
