"""``python -m maskwatch.gui``: the desktop app with flags for unattended runs (see maskwatch.gui.app)."""

import sys

from maskwatch.gui.app import main

sys.exit(main())
