-- Creates the warehouse's key/value facts (if missing): the session epoch, who created the file.
-- Parameters: none.
-- Columns: key (VARCHAR, unique), value (VARCHAR).
CREATE TABLE IF NOT EXISTS warehouse_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
)
