"""A pure-Python reference model of Gateway API v1 routing (Gateway, HTTPRoute, GRPCRoute,
ReferenceGrant, Service), written from the specification. See ``sandbox.reference.model``.
"""
