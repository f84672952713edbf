-- Deletes every stored bar (a new session starts; export the old one first).
-- Parameters: none.
-- Columns: none (a write).
DELETE FROM session_bars
