"""The `qwex` console script.

`qwex run --local ...` is the agent and is dispatched before click or
pydantic are imported, so it starts as fast as Python can.
"""

from __future__ import annotations

import gc
import os
import sys

from qwex_core.timings import mark

YOUNG_THRESHOLD = 100_000


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mark("cli-start")
    if args[:2] == ["run", "--local"]:
        from qwex_core.agent.main import main as agent_main

        return agent_main(args[2:])
    # Python's cyclic collector runs its young generation every 700 new container objects:
    # dozens of times while click, pydantic and the models load, and through a listing of
    # 10,000 runs, each time finding nothing to free (what these make lives until exit or
    # is freed by reference counting). Every 100,000 instead: a local `qwex run` took 8 ms
    # less CPU, `qwex list` of 10,000 runs 15 ms (medians of 9 and 13 alternated runs, load
    # 10). A long-lived command (`qwex serve`, `logs -f`) still collects, less often. Only
    # as the console script: a caller of `main(argv)` keeps its own process's settings.
    if argv is None:
        gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
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
