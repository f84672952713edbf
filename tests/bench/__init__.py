"""The benchmark: each performance target of DESIGN.md against a baseline timed in the same run.

Run it from a clone as ``python -m tests.bench`` (README.md beside this file says what it
measures and how to read it). It is a tool, not part of the `warehouse` package, and not a test
suite: pytest does not collect this folder (``collect_ignore`` in ``tests/conftest.py``).

Modules: `run` (options, the order of the measurements), `measure` (append, hot reads, flush,
extend, SQL, resample, export), `memory` (resident-memory probes, each in a fresh interpreter),
`pipelines` (scans over an archive, as-of joins), `seed` (the seed design, the main baseline),
`feed` (the session as a feed of Python values), `gcwatch` (the cyclic collector's pauses),
`targets` (DESIGN.md's figures), `report` (the table).
"""
