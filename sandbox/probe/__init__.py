"""The probe band: send a check's request, read what the echo backend saw, decide.

``types`` (plain data: Address, Observed, CheckResult...), ``http`` and ``grpc`` (the clients, as
the upstream conformance suite sends), ``expect`` (an answer against a check's expectation),
``prober`` (convergence: N consecutive matches within the timeout), ``compare`` (the reference
model's prediction against a real answer). Knows nothing of clusters or targets.
"""
