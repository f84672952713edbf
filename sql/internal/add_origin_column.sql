-- Adds the origin column to a table written before bars recorded it (opening such a file for writing): its bars are live.
-- Parameters: none; store.py fills in the table's name.
-- Columns: none (DDL).
ALTER TABLE {table} ADD COLUMN origin bar_origin DEFAULT 'live'
