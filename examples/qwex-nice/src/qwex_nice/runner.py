"""The runner: qwex's local runner with its agent started under `nice`."""

from qwex_core.models import Run
from qwex_core.runners.local import LocalRunner


class NiceRunner(LocalRunner):
    def agent_command(self, run: Run) -> list[str]:
        niceness = self.config.section("nice").niceness
        return ["nice", "-n", str(niceness), *super().agent_command(run)]
