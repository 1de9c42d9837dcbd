"""`python -m monitor.cli`: the `xborder` command without an installed script."""

import sys

from monitor.cli.main import main

sys.exit(main())
