-- The (symbol, ts) key of every stored bar, in (symbol, ts) order (rebuilds hot state on reopen).
-- Parameters: none.
-- Columns: symbol, ts.
SELECT symbol, ts FROM stored_bars ORDER BY symbol, ts
