-- Defines `stored_bars`: every flushed bar, the compacted table and its tail (each key once).
-- Parameters: none.
-- Columns: those of session_bars, origin as VARCHAR ('live' or 'filled'; one byte a bar when stored).
CREATE OR REPLACE TEMP VIEW stored_bars AS
SELECT * REPLACE (origin::VARCHAR AS origin) FROM session_bars
UNION ALL
SELECT * REPLACE (origin::VARCHAR AS origin) FROM session_bars_tail
