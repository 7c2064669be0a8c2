"""``python -m deployer``: the command line (see ``deployer.cli``)."""

import sys

from deployer.cli import run

sys.exit(run())
