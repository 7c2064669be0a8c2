"""A run's settings from its inputs, as a user would type them: a valid base (``BASE``), the
``Config`` it loads with some inputs changed (``cfg``), and the messages a user sees for bad ones
(``problems``). For unit, property and end-to-end tests alike."""

from __future__ import annotations

import pytest

from deployer.inputs import ConfigError, load
from deployer.settings import Config

BASE = {"INPUT_SERVICE": "my-app", "INPUT_IMAGE": "us-docker.pkg.dev/p/r/app:v1"}


def cfg(**inputs: str) -> Config:
    """Load with the base inputs plus these (name -> raw value)."""
    env = dict(BASE)
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    return load(env)[0]


def problems(**inputs: str) -> list[str]:
    """The messages a user would see for these inputs (on top of the valid base)."""
    with pytest.raises(ConfigError) as info:
        cfg(**inputs)
    return [str(p) for p in info.value.problems]
