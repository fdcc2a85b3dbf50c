"""`python -m qwex_core.agent run --local ...`: how the local runner starts the agent."""

import sys

from qwex_core.agent.main import main

if sys.argv[1:3] != ["run", "--local"]:
    sys.stderr.write("usage: python -m qwex_core.agent run --local [OPTIONS] -- COMMAND...\n")
    sys.exit(2)
sys.exit(main(sys.argv[3:]))
