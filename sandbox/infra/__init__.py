"""The machinery band: the tools and clusters a run stands on, knowing nothing of scenarios.

``tools`` (pinned binaries, checksum-verified downloads), ``docker_engine``, ``kube`` (kubectl
pinned to one kubeconfig and context), ``portforward``, ``namespaces``, ``images`` (preload),
``certs``, ``providers`` (k3d, kind: one small protocol), ``controllers`` (Envoy Gateway), and
``stack`` (``up``/``down``/``status`` over them). Imports only ``sandbox.errors`` and
``sandbox.settings`` from outside.
"""
