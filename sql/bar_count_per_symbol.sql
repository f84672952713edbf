-- How many bars each symbol has this session, in symbol order.
-- Parameters: none.
-- Columns: symbol, bar_count.
SELECT symbol, count(*) AS bar_count
FROM bars
GROUP BY symbol
ORDER BY symbol
