"""``python -m tests.bench``: run the benchmark and print its table (see README.md here)."""

from .run import main

raise SystemExit(main())
