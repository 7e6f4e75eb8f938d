"""`python -m infoplane <stage>`: the same as the `infoplane` command."""

from .cli import main

raise SystemExit(main())
