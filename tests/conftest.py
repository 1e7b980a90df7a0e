# The project's own tests use its pytest plugin (splay_cluster) also from a source checkout,
# where the pytest11 entry point is not installed.
pytest_plugins = ["splay.pytest_plugin"]
