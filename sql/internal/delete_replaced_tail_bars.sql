-- Deletes the tail's bars that a flushed batch replaces (keys registered as _flush_replaced).
-- Parameters: none.
-- Columns: none (a write).
DELETE FROM session_bars_tail AS s
USING _flush_replaced AS r
WHERE s.symbol = r.symbol AND s.ts = r.ts
