-- Appends a flushed batch (the Arrow table registered as _flush_batch) to the session table.
-- Parameters: none.
-- Columns: none (a write).
INSERT INTO session_bars SELECT * FROM _flush_batch
