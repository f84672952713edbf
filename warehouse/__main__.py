"""`python -m warehouse`: the command line."""

from warehouse.cli import main

raise SystemExit(main())
