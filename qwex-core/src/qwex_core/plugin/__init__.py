"""The qwex plugin host (pluggy project `qwex`, entry-point group `qwex`).

A plugin module implements hooks with `@hookimpl`:

    from qwex_core.plugin import hookimpl

    @hookimpl
    def qwex_register_runners(register):
        register("mine", "my_pkg.runner:MyRunner", description="runs on my cluster")
"""

from qwex_core.plugin.markers import PROJECT, hookimpl, hookspec

__all__ = ["PROJECT", "hookimpl", "hookspec"]
