-- The journaled bars (registered as _journal) that no stored bar holds exactly.
-- Parameters: none.
-- Columns: symbol, ts, open, high, low, close, volume, vwap, trade_count.
-- The journal's last record per (symbol, ts) wins; a live bar stored with the same values is skipped (a filled one is replaced).
WITH latest AS (
    SELECT * EXCLUDE (arrival)
    FROM (SELECT *, row_number() OVER () AS arrival FROM _journal)
    QUALIFY row_number() OVER (PARTITION BY symbol, ts ORDER BY arrival DESC) = 1
)
SELECT j.*
FROM latest AS j
WHERE NOT EXISTS (
    SELECT 1 FROM stored_bars AS s
    WHERE s.symbol = j.symbol AND s.ts = j.ts
      AND s.open = j.open AND s.high = j.high AND s.low = j.low AND s.close = j.close
      AND s.volume = j.volume
      AND s.vwap IS NOT DISTINCT FROM j.vwap
      AND s.trade_count IS NOT DISTINCT FROM j.trade_count
      AND s.origin = 'live'
)
