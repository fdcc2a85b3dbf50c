"""The runner: qwex's local runner with its agent started under `nice`."""

from qwex_core.models import Run
from qwex_core.runners.local import LocalRunner

from qwex_nice.plugin import NiceSettings


class NiceRunner(LocalRunner):
    def launcher(self, run: Run) -> list[str]:
        niceness = self.settings("nice", NiceSettings).niceness
        return ["nice", "-n", str(niceness), *super().launcher(run)]
