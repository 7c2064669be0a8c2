"""Developer tools shared by the tests, the benchmark and the demo (never part of the action image).

``devtools.harness`` runs ``entrypoint.py`` / ``post.py`` the way the GitHub runner runs the container
action. It lives here, not under tests/, because ``benchmarks/run.py`` and ``scripts/demo.py`` use it
too; it is not in ``benchmarks/`` because the tests and the demo are not benchmarks.
"""
