-- Appends bars that gap filling fetched (the Arrow table registered as _fill_batch) to the tail table, marked filled.
-- Parameters: none.
-- Columns: none (a write).
INSERT INTO session_bars_tail BY NAME SELECT *, 'filled' AS origin FROM _fill_batch
