"""The frozen agent's main module (`qwex_agent_entry` in the bundle).

The launcher has checked that argv is `qwex run --local ...` or `qwex agent copy ...`;
what follows those two words is handled by qwex-core's agent exactly as on a laptop.
`sys.prefix` is the bundle's root: the launcher sets the interpreter's home to it.
"""

import sys

if sys.argv[1:3] == ["agent", "copy"]:
    from qwex_core.agent.copy import main as copy_main

    sys.exit(copy_main(sys.argv[3:], sys.prefix))

from qwex_core.agent.main import main

sys.exit(main(sys.argv[3:]))
