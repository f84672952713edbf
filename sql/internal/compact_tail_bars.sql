-- Moves the tail's bars into session_bars sorted by (symbol, ts), so scans of one symbol skip most of the table (zone maps).
-- Parameters: none.
-- Columns: none (a write; drop_tail_table and create_tail_table empty the tail in the same transaction).
INSERT INTO session_bars SELECT * FROM session_bars_tail ORDER BY symbol, ts
