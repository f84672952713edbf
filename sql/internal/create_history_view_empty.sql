-- Defines `history` while the archive holds no day yet: no rows, the archive's columns.
-- Parameters: none.
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, origin, date.
CREATE OR REPLACE TEMP VIEW history AS
SELECT *, CAST(ts AS DATE) AS date FROM stored_bars WHERE false
