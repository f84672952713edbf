-- The archived bars of the last $sessions sessions of `history` (all of them if NULL), of one symbol (every symbol if NULL), in (symbol, ts) order.
-- Parameters: $symbol (VARCHAR or NULL), $sessions (BIGINT or NULL).
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count, date.
SELECT *
FROM history
WHERE ($symbol IS NULL OR symbol = $symbol)
  AND ($sessions IS NULL OR date IN (
      SELECT DISTINCT date FROM history ORDER BY date DESC LIMIT $sessions))
ORDER BY symbol, ts
