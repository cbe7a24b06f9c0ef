"""``python -m pyro_lfads.cli``: the same as the ``pyro-lfads`` command."""

import sys

from pyro_lfads.cli.commands import main

sys.exit(main())
