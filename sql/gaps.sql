-- The missing one-minute bars of the session by $now, merged into gap ranges [start, end) per symbol, in (symbol, start) order.
-- Parameters: $open, $close (the session's window), $now (minutes m with m + 1 minute <= $now are expected), $break_start, $break_end (a lunch break, or NULL), all TIMESTAMPTZ; $symbols (VARCHAR[]: symbols expected besides those with bars, [] for none).
-- Columns: symbol, start, end (exclusive), minutes (how many missing minutes the range holds).
-- The expected minutes are DuckDB's range() from $open to $close, one minute apart, less the break; a minute is present when a bar is stamped within it. Gaps run across the break.
WITH expected AS (
    SELECT m, row_number() OVER (ORDER BY m) AS slot
    FROM range($open::TIMESTAMPTZ, $close::TIMESTAMPTZ, INTERVAL 1 MINUTE) AS t(m)
    WHERE m + INTERVAL 1 MINUTE <= $now::TIMESTAMPTZ
        AND NOT coalesce(m >= $break_start::TIMESTAMPTZ AND m < $break_end::TIMESTAMPTZ, false)
),
symbols AS (
    SELECT DISTINCT symbol FROM bars
    UNION
    SELECT unnest($symbols::VARCHAR[]) AS symbol
),
present AS (
    SELECT DISTINCT symbol, date_trunc('minute', ts) AS m FROM bars
),
missing AS (
    SELECT s.symbol, e.m, e.slot
    FROM symbols AS s
    CROSS JOIN expected AS e
    LEFT JOIN present AS p ON p.symbol = s.symbol AND p.m = e.m
    WHERE p.m IS NULL
)
SELECT
    symbol,
    min(m) AS start,
    max(m) + INTERVAL 1 MINUTE AS "end",
    count(*) AS minutes
FROM (
    SELECT *, slot - row_number() OVER (PARTITION BY symbol ORDER BY slot) AS run
    FROM missing
)
GROUP BY symbol, run
ORDER BY symbol, start
