-- Drops the tail table, which create_tail_table then makes again, empty: once its bars are compacted or cleared, dropping it frees their memory at once (a DELETE would keep it until much later).
-- Parameters: none.
-- Columns: none (DDL).
DROP TABLE session_bars_tail
