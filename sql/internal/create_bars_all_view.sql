-- Defines `bars_all`: the archived days of `history` and today's `bars`, each bar with its trading date.
-- Parameters: none; history.py fills in {date}, the expression dating today's bars (the session's trading date, or their UTC date without a session).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, date.
CREATE OR REPLACE TEMP VIEW bars_all AS
SELECT * FROM history
UNION ALL BY NAME
SELECT *, {date} AS date FROM bars
