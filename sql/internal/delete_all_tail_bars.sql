-- Deletes every bar of the tail table (after a compaction moved them, or when a session is cleared).
-- Parameters: none.
-- Columns: none (a write).
DELETE FROM session_bars_tail
