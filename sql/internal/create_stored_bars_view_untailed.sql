-- Defines `stored_bars` over a file written before the tail table existed (opened read-only): session_bars alone, every bar live.
-- Parameters: none.
-- Columns: those of session_bars, origin 'live'.
CREATE OR REPLACE TEMP VIEW stored_bars AS
SELECT *, 'live' AS origin FROM session_bars
