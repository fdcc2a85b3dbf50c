# Here, not in the test module: pytest must load the plugin (and rewrite the suite's
# assertions) before a test module imports qwex_core.testing.
pytest_plugins = ["qwex_core.testing"]
