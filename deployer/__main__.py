"""``python -m deployer``: the command line (see ``deployer.cli``)."""

import sys

from deployer.cli import run

if __name__ == "__main__":
    sys.exit(run())
