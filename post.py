#!/usr/bin/env python3
"""The action's post step: restores the traffic if the main step was cancelled or died mid-rollout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deployer.main import post

if __name__ == "__main__":
    sys.exit(post())
