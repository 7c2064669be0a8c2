#!/usr/bin/env python3
"""The action's main step, run by the container exactly as ``python entrypoint.py`` runs it here.

With arguments it is the command line instead (``entrypoint.py deploy --service ...``): the runner
passes none (action.yml declares no ``args``), so the same image serves other CI systems too.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deployer.main import main

if __name__ == "__main__":
    if len(sys.argv) > 1:
        from deployer.cli import run

        sys.exit(run(sys.argv[1:]))
    sys.exit(main())
