"""``python -m hub`` runs the ``lienthong`` command line."""

from hub.cli import main

raise SystemExit(main())
