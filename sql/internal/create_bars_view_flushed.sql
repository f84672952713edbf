-- Defines `bars` while every bar is flushed: the stored bars alone.
-- Parameters: none.
-- Columns: those of session_bars.
CREATE OR REPLACE TEMP VIEW bars AS
SELECT * FROM stored_bars
