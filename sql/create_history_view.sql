-- Defines `history`: every bar of the Parquet archive, with its partition's date.
-- Parameters: none; export.py fills in the archive's glob as {files}.
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, date.
CREATE OR REPLACE TEMP VIEW history AS
SELECT * FROM read_parquet('{files}', hive_partitioning = true)
