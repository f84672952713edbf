-- Defines `stored_bars`: every flushed bar, the compacted table and its tail (each key once).
-- Parameters: none.
-- Columns: those of session_bars.
CREATE OR REPLACE TEMP VIEW stored_bars AS
SELECT * FROM session_bars
UNION ALL
SELECT * FROM session_bars_tail
