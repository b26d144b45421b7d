"""Simulations that ``interlace run`` discovers: scenarios, their invariants, their databases.

``editor_chat/`` drives the reference system (``src/editor_chat``) with
concurrent requests; ``regressions/`` holds the tokens of past failures,
replayed first on every run. Run them from the project root::

    interlace run                 # SQLite, 200 schedules each
    interlace run --db postgres   # PostgreSQL from the provider chain
"""
