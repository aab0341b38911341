"""The pytest plugin (entry point ``pytest11``, name ``gateway_sandbox``): ``plugin`` (the hooks,
options and fixtures; light at import), ``state`` (the session's state), ``items`` (scenario
folders as collectors, checks as items), ``results`` (the ConformanceReport). pytest only here.
"""
