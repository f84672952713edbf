-- Creates the tail table (if it does not exist): flushes write here, in arrival order, until it is compacted into session_bars (by size, and at every checkpoint).
-- Parameters: none.
-- Columns: those of session_bars.
CREATE TABLE IF NOT EXISTS session_bars_tail (
    symbol VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume DOUBLE NOT NULL,
    vwap DOUBLE,
    trade_count BIGINT,
    origin bar_origin NOT NULL DEFAULT 'live'
)
