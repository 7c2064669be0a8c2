#!/usr/bin/env python3
"""The action's main step, run by the container exactly as ``python entrypoint.py`` runs it here."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deployer.main import main

if __name__ == "__main__":
    sys.exit(main())
