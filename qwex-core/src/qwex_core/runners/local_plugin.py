"""Registers the local runner, through the entry point `local`, as any third-party plugin would."""

from qwex_core.plugin import hookimpl
from qwex_core.plugin.hookspecs import RegisterRunner


@hookimpl
def qwex_register_runners(register: RegisterRunner) -> None:
    register(
        "local", "qwex_core.runners.local:LocalRunner", description="a process on this machine"
    )
