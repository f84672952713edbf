-- Defines `bars`: every bar of the session, flushed or not (read-your-writes).
-- Parameters: none; reads the Arrow tables registered as _unflushed and _replaced.
-- Columns: those of session_bars.
-- Stored rows whose key a newer unflushed bar replaces are hidden, so each key shows once.
CREATE OR REPLACE TEMP VIEW bars AS
SELECT s.* FROM stored_bars AS s
WHERE NOT EXISTS (SELECT 1 FROM _replaced AS r WHERE r.symbol = s.symbol AND r.ts = s.ts)
UNION ALL
SELECT *, 'live' AS origin FROM _unflushed
