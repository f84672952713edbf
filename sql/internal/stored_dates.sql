-- The UTC dates that stored bars fall on, with their bar counts, in date order (one Parquet partition each).
-- Parameters: none.
-- Columns: date, bar_count.
SELECT CAST(ts AS DATE) AS date, count(*) AS bar_count
FROM stored_bars
GROUP BY ALL
ORDER BY date
