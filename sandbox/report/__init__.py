"""Reports of a run, data first: ``text`` (what a person reads), ``json`` (``-o json``), ``junit``,
``conformance`` (the upstream ConformanceReport), and ``write`` (the report files, written the
same way by the CLI and the pytest plugin).
"""
