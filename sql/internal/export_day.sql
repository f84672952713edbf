-- Copies one day of stored bars, sorted by (symbol, ts), to a zstd Parquet file.
-- Parameters: $start, $end (TIMESTAMPTZ); the target path and codec are filled in by archive.py.
-- Columns: none (writes symbol, ts, open, high, low, close, volume, vwap, trade_count).
COPY (
    SELECT * FROM session_bars WHERE ts >= $start AND ts < $end ORDER BY symbol, ts
) TO '{path}' (FORMAT parquet, COMPRESSION {compression})
