-- The tables and views a remote client may browse (Flight SQL's GetTables, GetDbSchemas, GetCatalogs).
-- Parameters: $catalog (VARCHAR, NULL for any), $schema_pattern, $table_pattern (VARCHAR LIKE patterns, NULL for any), $types (list of VARCHAR, NULL for any).
-- Columns: catalog_name, db_schema_name, table_name, table_type ('TABLE' or 'VIEW'); the warehouse file's tables and the views of `bars`, never DuckDB's own or the log's registered tables (named with a leading underscore).
SELECT * FROM (
    SELECT database_name AS catalog_name, schema_name AS db_schema_name, table_name,
           'TABLE' AS table_type
    FROM duckdb_tables() WHERE NOT internal AND database_name IN ('warehouse', 'temp')
    UNION ALL
    SELECT database_name, schema_name, view_name, 'VIEW'
    FROM duckdb_views() WHERE NOT internal AND database_name IN ('warehouse', 'temp')
)
WHERE NOT starts_with(table_name, '_')
  AND ($catalog IS NULL OR catalog_name = $catalog)
  AND ($schema_pattern IS NULL OR db_schema_name LIKE $schema_pattern)
  AND ($table_pattern IS NULL OR table_name LIKE $table_pattern)
  AND ($types IS NULL OR list_contains($types, table_type))
ORDER BY catalog_name, db_schema_name, table_name
