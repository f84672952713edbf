"""The archive read by Spark (local mode): optional, run where pyspark and a JVM are installed.

`pip install pyspark` (and a Java runtime) makes this test run; without them it is skipped, and
says so in the test summary.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse import Calendar, Warehouse
from warehouse.replay import replay
from warehouse.sample import generate_sessions

pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (java is not on PATH)", allow_module_level=True)


def test_spark_reads_the_session_archive_with_its_partitions(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    week = generate_sessions(Calendar("XNYS"), date(2025, 11, 24), 3, 5)
    with Warehouse(tmp_path / "wh.duckdb", flush_interval=None, archive=archive) as wh:
        replay(wh, pa.concat_tables(week))
    spark = (pyspark_sql.SparkSession.builder.master("local[1]").appName("archive")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    try:
        frame = spark.read.parquet(str(archive))  # _manifest.json is skipped by its name
        assert frame.count() == sum(t.num_rows for t in week)
        by_date = {str(r["date"]): r["count"] for r in frame.groupBy("date").count().collect()}
        assert by_date == {"2025-11-24": 1950, "2025-11-25": 1950, "2025-11-26": 1950}
        types = dict(frame.dtypes)
        assert types["ts"] == "timestamp"
        assert types["volume"] == "double"
        assert types["trade_count"] == "bigint"
    finally:
        spark.stop()
