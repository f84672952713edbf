-- Defines `stored_bars` over a file written before bars recorded their origin (opened read-only): every bar is live.
-- Parameters: none.
-- Columns: those of session_bars, origin 'live'.
CREATE OR REPLACE TEMP VIEW stored_bars AS
SELECT *, 'live' AS origin FROM session_bars
UNION ALL
SELECT *, 'live' AS origin FROM session_bars_tail
