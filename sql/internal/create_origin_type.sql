-- Creates the type of a bar's origin (if it does not exist): 'live' (appended) or 'filled' (inserted by gap filling).
-- Parameters: none.
-- Columns: none (DDL). Stored as one byte a bar; the views show it as VARCHAR.
CREATE TYPE IF NOT EXISTS bar_origin AS ENUM ('live', 'filled')
