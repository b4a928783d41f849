"""`python -m netc`: the command line."""

from .cli import main

raise SystemExit(main())
