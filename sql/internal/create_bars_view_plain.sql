-- Defines `bars` while no unflushed bar replaces a stored one: the table plus the log.
-- Parameters: none; reads the Arrow table registered as _unflushed.
-- Columns: those of session_bars.
CREATE OR REPLACE TEMP VIEW bars AS
SELECT * FROM stored_bars
UNION ALL
SELECT *, 'live' AS origin FROM _unflushed
