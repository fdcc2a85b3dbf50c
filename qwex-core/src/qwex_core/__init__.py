"""qwex: run a command anywhere with one CLI and one run record.

Kept import-free on purpose: the agent and `qwex --help` import this package
and must stay fast and dependency-free.
"""

__version__ = "0.1.0"
