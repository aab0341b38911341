"""The input band: what a scenario folder says and whether it is well formed.

``model`` (the typed scenario), ``load`` (``load_scenario``: scenario.yaml and its manifests,
every problem with file, line and field), ``library`` (named scenarios), ``crds`` (the manifests
against the Gateway API CRD schemas), ``fields`` (the field check used without them),
``features`` (upstream conformance feature names). Imports only ``sandbox.errors``,
``sandbox.settings`` and ``sandbox.manifests``.
"""
