"""The qwex agent: supervises one command and writes its run record.

Everything under `qwex_core.agent` uses the standard library only, so that it
can be frozen into a self-contained binary and mounted into any container
image (see DESIGN §1.1). An import-linter contract enforces this.
"""
