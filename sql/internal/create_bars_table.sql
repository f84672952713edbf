-- Creates the session table (if it does not exist): the flushed bars, compacted in runs sorted by (symbol, ts).
-- Parameters: none.
-- Columns: symbol, ts (TIMESTAMPTZ, UTC microseconds), open, high, low, close, volume, vwap, trade_count, origin ('live' or 'filled').
-- Uniqueness of (symbol, ts) is kept by the writer: an index would cost memory and flush time.
CREATE TABLE IF NOT EXISTS session_bars (
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
