"""The ``sandbox`` command (click + rich only here): ``main`` (the group), ``stack`` (up, down,
status, doctor, images), ``scenarios`` (list, check, echo), ``run``, ``explain``, ``compare``,
and ``common`` (consoles, ``-o``, errors to exit codes). Every command is a thin shell over the
library below it.
"""
