-- Appends a flushed batch (the Arrow table registered as _flush_batch) to the tail table.
-- Parameters: none.
-- Columns: none (a write).
INSERT INTO session_bars_tail SELECT * FROM _flush_batch
