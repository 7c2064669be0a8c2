"""End-to-end benchmarks: full rollouts of ``entrypoint.py`` against the local emulator."""
