"""HTTPRoute filters as pure functions: header modifiers, redirect, URL rewrite.

Sources: v1.6.1 CRD field docs of ``requestHeaderModifier``, ``responseHeaderModifier``,
``requestRedirect`` (scheme, hostname, port, path, statusCode) and ``urlRewrite``
(kubernetes-sigs/gateway-api apis/v1/httproute_types.go, including the ReplacePrefixMatch table).
"""

from __future__ import annotations

from sandbox.reference.objects import HeaderOps, PathModifier, Redirect

DEFAULT_PORTS = {"http": 80, "https": 443}


def apply_header_ops(ops: HeaderOps, headers: dict[str, str]) -> dict[str, str]:
    """Apply one header modifier to ``headers`` (names case-insensitive) and return a new dict.

    ``remove`` first, then ``set`` (overwrite or add), then ``add`` (append to an existing value
    with ","). The spec leaves the order of set/add/remove on the *same* header open; this is the
    order Envoy applies header removals before additions.
    """
    out = dict(headers)

    def find(name: str) -> str | None:
        lname = name.lower()
        for k in out:
            if k.lower() == lname:
                return k
        return None

    for name in ops.remove:
        k = find(name)
        while k is not None:
            del out[k]
            k = find(name)
    for name, value in ops.set:
        k = find(name)
        if k is not None:
            del out[k]
        out[name] = value
    for name, value in ops.add:
        k = find(name)
        if k is None:
            out[name] = value
        else:
            out[k] = f"{out[k]},{value}"
    return out


def replace_prefix(path: str, prefix: str, replacement: str) -> str:
    """ReplacePrefixMatch on a path already matched by PathPrefix ``prefix``.

    Reproduces the table in the spec: with prefix /foo, /foo/bar + /xyz -> /xyz/bar,
    /foo/bar + /xyz/ -> /xyz/bar, /foo + /xyz -> /xyz, /foo/ + /xyz -> /xyz/,
    /foo/bar + "" -> /bar, /foo/ + "" -> /, /foo + "" -> /, /foo/ + / -> /, /foo + / -> /.
    """
    p = prefix.rstrip("/")
    rest = path[len(p) :]  # "" or "/..." (the match is element-wise)
    r = replacement.rstrip("/")
    if rest in ("", "/"):
        if r == "":
            return "/"
        return r + rest
    return r + rest


def modify_path(mod: PathModifier, path: str, matched_prefix: str | None) -> str:
    if mod.type == "ReplaceFullPath":
        return mod.value
    if matched_prefix is None:
        return path
    return replace_prefix(path, matched_prefix, mod.value)


def redirect_target(
    r: Redirect,
    request_scheme: str,
    request_host: str,
    listener_port: int,
    path: str,
    query: str,
    matched_prefix: str | None,
) -> tuple[str, str, int | None, str, str]:
    """(scheme, host, port or None when omitted, path, Location) of a RequestRedirect.

    Port rules (``requestRedirect.port``): when unset, the well-known port of the redirect
    *scheme* if a scheme is set, else the Gateway listener port; the port is left out of
    Location for http:80 and https:443.
    """
    scheme = r.scheme or request_scheme
    host = r.hostname or request_host
    if r.port is not None:
        port = r.port
    elif r.scheme:
        port = DEFAULT_PORTS.get(r.scheme, listener_port)
    else:
        port = listener_port
    shown: int | None = None if DEFAULT_PORTS.get(scheme) == port else port
    new_path = modify_path(r.path, path, matched_prefix) if r.path else path
    location = f"{scheme}://{host}" + (f":{shown}" if shown is not None else "") + new_path
    if query:
        location += "?" + query
    return scheme, host, shown, new_path, location
