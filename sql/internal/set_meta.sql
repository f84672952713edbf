-- Sets one of the warehouse's facts (insert, or replace the value of an existing key).
-- Parameters: $key (VARCHAR), $value (VARCHAR).
-- Columns: none (a write).
INSERT OR REPLACE INTO warehouse_meta VALUES ($key, $value)
