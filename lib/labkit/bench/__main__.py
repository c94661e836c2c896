"""``python -m labkit.bench run|sweep|compare`` (the in-cluster Job runs this)."""

from labkit.bench.cli import main

raise SystemExit(main())
