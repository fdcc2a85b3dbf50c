"""The `qwex` console script.

`qwex run --local ...` is the agent and is dispatched before click or
pydantic are imported, so it starts as fast as Python can.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:2] == ["run", "--local"]:
        from qwex_core.agent.main import main as agent_main

        return agent_main(args[2:])
    from qwex_core.cli.app import run_cli

    return run_cli(args)
