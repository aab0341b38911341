"""Property tests: precedence is a total order that does not depend on the input order."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.reference import matching as mt
from sandbox.reference.model import Model

GATEWAY: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "gw"},
    "spec": {
        "gatewayClassName": "eg",
        "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
    },
}
SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "svc"},
    "spec": {"ports": [{"port": 8080}]},
}

paths = st.sampled_from(["/", "/a", "/a/", "/a/b", "/ab", "/a/b/c"])
# a match's fields are strategies of different types (a string, a list of dicts)
match_optional: dict[str, st.SearchStrategy[Any]] = {
    "method": st.sampled_from(["GET", "POST"]),
    "headers": st.lists(
        st.fixed_dictionaries({"name": st.sampled_from(["h1", "h2", "h3"]), "value": st.just("1")}),
        max_size=3,
        unique_by=lambda h: h["name"],
    ),
    "queryParams": st.lists(
        st.fixed_dictionaries({"name": st.sampled_from(["q1", "q2"]), "value": st.just("1")}),
        max_size=2,
        unique_by=lambda q: q["name"],
    ),
}
match_st = st.fixed_dictionaries(
    {
        "path": st.fixed_dictionaries(
            {"type": st.sampled_from(["Exact", "PathPrefix"]), "value": paths}
        ),
    },
    optional=match_optional,
)
rule_st = st.lists(match_st, min_size=1, max_size=3).map(
    lambda ms: {"matches": ms, "backendRefs": [{"name": "svc", "port": 8080}]}
)


@st.composite
def routes(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 5))
    names = draw(
        st.lists(
            st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=n, max_size=n, unique=True
        )
    )
    out = []
    for name in names:
        meta: dict[str, Any] = {"name": name}
        # explicit, possibly equal timestamps: then input order must not matter
        meta["creationTimestamp"] = f"2020-09-08T01:02:0{draw(st.integers(0, 2))}Z"
        hostnames = draw(st.sampled_from([[], ["x.example.com"], ["*.example.com"]]))
        out.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": meta,
                "spec": {
                    "parentRefs": [{"name": "gw"}],
                    "hostnames": hostnames,
                    "rules": draw(st.lists(rule_st, min_size=1, max_size=3)),
                },
            }
        )
    return out


request_st = st.tuples(
    st.sampled_from(["GET", "POST"]),
    st.sampled_from(["/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "/a/bc"]),
    st.sampled_from(["", "q1=1", "q1=1&q2=1"]),
    st.sets(st.sampled_from(["h1", "h2", "h3"])),
    st.sampled_from(["x.example.com", "y.example.com"]),
)


@settings(max_examples=150, deadline=None)
@given(routes(), request_st, st.randoms(use_true_random=False))
def test_winner_does_not_depend_on_input_order(
    rs: list[dict[str, Any]], req: tuple[str, str, str, set[str], str], rnd: Any
) -> None:
    method, path, query, hdrs, host = req
    target = path + (f"?{query}" if query else "")
    headers = {h: "1" for h in hdrs}
    base = Model.from_objects([GATEWAY, SERVICE, *rs]).decide(
        "default/gw", 80, method, host, target, headers
    )
    shuffled = list(rs)
    rnd.shuffle(shuffled)
    again = Model.from_objects([SERVICE, *shuffled, GATEWAY]).decide(
        "default/gw", 80, method, host, target, headers
    )
    assert (again.status, again.route, again.rule, again.match) == (
        base.status,
        base.route,
        base.rule,
        base.match,
    )


@settings(max_examples=150, deadline=None)
@given(routes(), request_st)
def test_winner_matches_and_nothing_that_matches_ranks_higher(
    rs: list[dict[str, Any]], req: tuple[str, str, str, set[str], str]
) -> None:
    method, path, query, hdrs, host = req
    target = path + (f"?{query}" if query else "")
    headers = {h: "1" for h in hdrs}
    model = Model.from_objects([GATEWAY, SERVICE, *rs])
    d = model.decide("default/gw", 80, method, host, target, headers)
    by_name = {r["metadata"]["name"]: r for r in rs}
    # every (route, rule) whose match accepts the request, with its spec rank
    # Envoy Gateway: the request lands in one virtual host, the most specific route hostname
    # that matches it (None: the catch-all); only routes serving it there compete
    served = [h for r in model._routes if isinstance(h := mt.best_hostname(r.hostnames, host), str)]
    vhost = max(served, key=mt.hostname_rank) if served else None
    matching = []
    for r in model._routes:  # the parsed routes
        hn = mt.best_hostname(r.hostnames, host)
        if hn is False or (hn or None) != vhost:
            continue
        for rule in r.rules:
            for m in rule.http_matches:
                if mt.http_match_failure(m, method, path, query, headers) is None:
                    matching.append(
                        (
                            mt.hostname_rank(hn or None),
                            mt.http_match_rank(m),
                            r.meta.key,
                            rule.index,
                        )
                    )
    if not matching:
        assert d.status == 404
        return
    assert d.status == 200 and d.route is not None
    best = max(m[:2] for m in matching)
    winners = [m for m in matching if m[:2] == best]
    assert (d.route, d.rule) in {(m[2], m[3]) for m in winners}
    # among equally specific candidates the oldest, then alphabetically first route wins
    stamp = {f"default/{n}": r["metadata"]["creationTimestamp"] for n, r in by_name.items()}
    first = min(winners, key=lambda m: (stamp[m[2]], m[2], m[3]))
    assert (d.route, d.rule) == (first[2], first[3])
