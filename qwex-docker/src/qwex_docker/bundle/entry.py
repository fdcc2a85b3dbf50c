"""The frozen agent's main module (`qwex_agent_entry` in the bundle).

The launcher has checked that argv is `qwex run --local ...`; everything after
those two words is the agent's own command line, handled by qwex-core's agent
exactly as on a laptop.
"""

import sys

from qwex_core.agent.main import main

sys.exit(main(sys.argv[3:]))
