"""The `qwex` console script.

`qwex run --local ...` is the agent and is dispatched before click or
pydantic are imported, so it starts as fast as Python can.
"""

from __future__ import annotations

import os
import sys

from qwex_core.timings import mark


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mark("cli-start")
    if args[:2] == ["run", "--local"]:
        from qwex_core.agent.main import main as agent_main

        return agent_main(args[2:])
    if "_QWEX_COMPLETE" in os.environ:  # the shell asks for completions
        from qwex_core.cli.app import run_completion

        code = run_completion()
    else:
        from qwex_core.cli.app import run_cli

        code = run_cli(args)
    if argv is None:
        # Tearing down an interpreter that loaded pydantic and click takes ~30 ms, a fifth of
        # `qwex run -d`. Everything qwex writes is flushed or closed by now: skip the teardown.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                code = code or 1
        mark("exit")
        os._exit(code)
    return code
