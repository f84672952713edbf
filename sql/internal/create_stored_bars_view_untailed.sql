-- Defines `stored_bars` over a file written before the tail table existed (opened read-only): session_bars alone.
-- Parameters: none.
-- Columns: those of session_bars.
CREATE OR REPLACE TEMP VIEW stored_bars AS
SELECT * FROM session_bars
