-- Each event of the table `events` with the latest bar of its symbol known at its ts: an as-of join that never looks ahead, in (ts, symbol) order.
-- Parameters: $known_after (INTERVAL), $tolerance (INTERVAL or NULL).
-- Columns: the columns of `events`, then bar_ts (the bar's start), open, high, low, close, volume, vwap, trade_count; NULL where no bar of the symbol is known at the event's ts.
-- `events` is a table the caller registers (Warehouse.query(..., tables={"events": frame})), with a symbol (VARCHAR) and a ts (TIMESTAMPTZ) column; the bars are those of `bars_all`.
-- A bar is known $known_after after its ts: INTERVAL 1 MINUTE for a one-minute bar known at its end (no event sees a bar that had not finished), INTERVAL 0 MINUTES at its start (look-ahead). An event at exactly that instant sees the bar; a bar known more than $tolerance before the event is not joined (NULL: no limit).
WITH joined AS (
    SELECT
        e.*,
        CASE WHEN $tolerance::INTERVAL IS NULL OR e.ts - b.known <= $tolerance::INTERVAL
            THEN b.bar END AS _asof_bar
    FROM events AS e
    ASOF LEFT JOIN (
        SELECT
            symbol,
            ts + $known_after::INTERVAL AS known,
            {'bar_ts': ts, 'open': open, 'high': high, 'low': low, 'close': close,
             'volume': volume, 'vwap': vwap, 'trade_count': trade_count} AS bar
        FROM bars_all
    ) AS b
        ON e.symbol = b.symbol AND e.ts >= b.known
)
SELECT * EXCLUDE (_asof_bar), unnest(_asof_bar)
FROM joined
ORDER BY ts, symbol
