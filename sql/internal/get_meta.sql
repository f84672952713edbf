-- One of the warehouse's facts, by key (no row if it was never set).
-- Parameters: $key (VARCHAR).
-- Columns: value.
SELECT value FROM warehouse_meta WHERE key = $key
