-- Defines `bars` while every bar is flushed: the session table alone.
-- Parameters: none.
-- Columns: those of session_bars.
CREATE OR REPLACE TEMP VIEW bars AS
SELECT * FROM session_bars
