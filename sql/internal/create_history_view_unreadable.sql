-- Defines `history` over an archive none of whose day files can be read: any query that reads a row of it fails, saying why.
-- Parameters: none; archive.py fills in the message (which files, or which archive path, and why; quotes doubled).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, origin, date.
CREATE OR REPLACE TEMP VIEW history AS
SELECT *, CAST(ts AS DATE) AS date FROM stored_bars WHERE false
UNION ALL
-- One row made of errors: counting it, filtering on any column or reading any value raises;
-- an empty view would answer "no history" instead, which is not true.
SELECT
    CAST(error(message) AS VARCHAR) AS symbol,
    CAST(error(message) AS TIMESTAMPTZ) AS ts,
    CAST(error(message) AS DOUBLE) AS open,
    CAST(error(message) AS DOUBLE) AS high,
    CAST(error(message) AS DOUBLE) AS low,
    CAST(error(message) AS DOUBLE) AS close,
    CAST(error(message) AS DOUBLE) AS volume,
    CAST(error(message) AS DOUBLE) AS vwap,
    CAST(error(message) AS BIGINT) AS trade_count,
    CAST(error(message) AS VARCHAR) AS origin,
    CAST(error(message) AS DATE) AS date
FROM (SELECT '{message}' AS message) AS unreadable
WHERE error(message) IS NULL
