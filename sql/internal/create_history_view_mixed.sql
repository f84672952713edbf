-- Defines `history` over an archive whose day files differ in columns (days archived before bars recorded their origin, and after): matched by name.
-- Parameters: none; history.py fills in the list of day files (readable ones only: DuckDB reads every footer to match them; each path glob-escaped, so DuckDB reads it literally, with quotes doubled).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, origin (null on the older days), date.
CREATE OR REPLACE TEMP VIEW history AS
SELECT * FROM read_parquet(['{files}'], hive_partitioning = true, union_by_name = true)
