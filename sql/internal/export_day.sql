-- One day of stored bars (or a whole session), sorted by (symbol, ts), as archive.py writes them to Parquet.
-- Parameters: $start, $end (TIMESTAMPTZ).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, origin.
SELECT * REPLACE (origin::VARCHAR AS origin) FROM session_bars WHERE ts >= $start AND ts < $end ORDER BY symbol, ts
