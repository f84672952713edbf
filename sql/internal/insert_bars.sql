-- Appends a flushed batch (the Arrow table registered as _flush_batch) to the tail table; its bars are live.
-- Parameters: none.
-- Columns: none (a write; origin takes its default, 'live').
INSERT INTO session_bars_tail BY NAME SELECT * FROM _flush_batch
