"""``python -m interlace.cli``: the ``interlace`` command."""

from interlace.cli import main

raise SystemExit(main())
