-- Defines `history`: every bar of the Parquet archive's day files, with its partition's date.
-- Parameters: none; archive.py fills in the list of day files (a readable one first; each path glob-escaped, so DuckDB reads it literally, with quotes doubled).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, origin (but over days all archived before bars recorded it), date.
CREATE OR REPLACE TEMP VIEW history AS
SELECT * FROM read_parquet(['{files}'], hive_partitioning = true)
