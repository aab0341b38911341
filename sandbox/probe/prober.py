"""Send a check's request, read what the echo backend saw, compare, and wait for convergence.

Follows the upstream conformance suite (kubernetes-sigs/gateway-api v1.6.1):

- ``conformance/utils/roundtripper/roundtripper.go`` ``DefaultRoundTripper``: a new transport per
  request without keep-alive, a per-request timeout, redirects not followed
  (``UnfollowRedirect``), the body decoded as the echo JSON when the response's Content-Type is
  ``application/json``, the ``Location`` of a 3xx parsed into scheme/host/port/path;
- ``conformance/utils/http/http.go`` ``CompareRoundTrip``: status in the expected list (a 408 or
  504 also passes when a timeout code is expected); on a 200 or 204 the request the backend saw
  (exact path with query, method, host when given, headers case-insensitive with values joined
  by ``,``, absent headers), the namespace, response headers present and absent, and the backend
  by pod-name prefix; on a 3xx the redirect with the default-port rules;
- ``AwaitConvergence``: N consecutive matches within the timeout, the next try at once after a
  match and after a 1 s back-off after a miss (connection errors and 5xx count as misses);
  beyond upstream, a check whose every request so far was refused asks the target's
  ``unreachable`` hook whether anything will ever listen there (an ``--address`` with nothing
  behind it, a port-forward that gave up), which may end it with an environment error; and a
  target whose answers never change (``settled``: the local reference gateway) decides a check
  on its first full round, ``consecutive`` requests without back-off (a weighted check: up to
  ``SETTLED_ROUNDS`` rounds, its backends being drawn at random);
- ``conformance/utils/weight``: traffic shares over many requests, a backend's name being its pod
  name minus the last two ``-`` parts, exactly the backends with a share > 0 answering.

Everything that waits or sends is injectable (``Prober(send=..., clock=..., sleep=...)``) so the
logic is tested without the network or the wall clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sandbox.errors import TargetUnreachable
from sandbox.probe import grpc as probe_grpc
from sandbox.probe.expect import compare, compare_shares
from sandbox.probe.http import send_http
from sandbox.probe.types import (
    Address,
    CheckResult,
    Mismatch,
    Observed,
    ProbeRequest,
    Refusals,
    Unreachable,
)
from sandbox.scenario.model import Check

BACKOFF = 1.0  # s after a miss (upstream AwaitConvergence)
WEIGHT_CONCURRENCY = 10  # upstream weight tests: 10 concurrent requests
SETTLED_ROUNDS = 5  # rounds of samples a weighted check gets on a settled target


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Converging
# --------------------------------------------------------------------------------------------


Sender = Callable[[ProbeRequest], Observed]


class _Streak:
    """Refused requests in a row, and whether anything else came back before them."""

    def __init__(self) -> None:
        self.count = 0
        self.since = 0.0
        self.answered = False

    def saw(self, observed: list[Observed], sent: float) -> None:
        if observed and all(o.refused for o in observed):
            if self.count == 0:
                self.since = sent
            self.count += len(observed)
        else:
            self.answered = self.answered or bool(observed)
            self.count = 0

    def ask(
        self, hook: Unreachable | None, address: Address, now: float, final: bool
    ) -> TargetUnreachable | None:
        if hook is None or self.count == 0:
            return None
        return hook(Refusals(address, self.count, now - self.since, self.answered, final))


class Prober:
    """Runs checks against addresses until they converge or time out."""

    def __init__(
        self,
        *,
        send: Sender = send_http,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = BACKOFF,
        grpc_send: Callable[[Check, Address], Observed] | None = None,
        stop: threading.Event | None = None,
        on_miss: Callable[[Check, int, float, Observed, list[Mismatch]], None] | None = None,
    ) -> None:
        """``on_miss(check, attempts, elapsed, observed, mismatches)`` is told of every response
        that did not match while a check converges (live progress on a terminal)."""
        self.on_miss = on_miss
        self.send = send
        self.clock = clock
        self.sleep = sleep
        self.backoff = backoff
        self.grpc_send: Callable[[Check, Address], Observed] = (
            grpc_send if grpc_send is not None else probe_grpc.grpc_send
        )
        self.stop = stop

    def build(self, check: Check, address: Address) -> ProbeRequest:
        req = check.request
        headers = dict(req.headers)
        if req.backend_response_headers:
            # upstream MakeRequest: X-Echo-Set-Header built from BackendSetResponseHeaders
            headers["X-Echo-Set-Header"] = ",".join(
                f"{k}:{v}" for k, v in req.backend_response_headers.items()
            )
        return ProbeRequest(
            address=address,
            scheme=req.scheme,
            host=req.host,
            method=req.method,
            path=req.path,
            headers=headers,
            timeout=check.request_timeout,
        )

    def _send(self, check: Check, address: Address, probe: ProbeRequest) -> Observed:
        if check.request.grpc is not None:
            return self.grpc_send(check, address)
        return self.send(probe)

    def run(
        self,
        check: Check,
        address: Address,
        *,
        namespace_of: Callable[[str], str] = lambda ns: ns,
        unreachable: Unreachable | None = None,
        settled: bool = False,
    ) -> CheckResult:
        """Send ``check`` to ``address`` until it converges or its timeout passes.

        ``unreachable`` (see :data:`Unreachable`) is asked after each refused request (for a
        weighted check: each round refused throughout); the error it returns is raised, with
        this check's result so far as its ``check_result``. ``settled``: the target's answers
        never change, so the first ``consecutive`` requests decide (sent without back-off)."""
        probe = self.build(check, address)
        if check.expect.backends is not None:
            return self._run_weighted(check, address, probe, unreachable, settled)
        start = self.clock()
        attempts = 0
        matches = 0
        streak = _Streak()
        observed: Observed | None = None
        mismatches: list[Mismatch] = []
        while True:
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            attempts += 1
            sent = self.clock()
            observed = self._send(check, address, probe)
            mismatches = compare(check, observed, namespace_of=namespace_of)
            elapsed = self.clock() - start
            streak.saw([observed], sent)
            if not mismatches:
                matches += 1
                if matches >= check.consecutive:
                    return CheckResult(
                        check, True, attempts, elapsed, observed, [], request=probe, matches=matches
                    )
                if elapsed >= check.timeout or (settled and attempts >= check.consecutive):
                    break
                continue
            matches = 0
            if self.on_miss is not None:
                self.on_miss(check, attempts, elapsed, observed, mismatches)
            backoff = 0.0 if settled else self.backoff
            final = elapsed + backoff >= check.timeout or (
                settled and attempts >= check.consecutive
            )
            error = streak.ask(unreachable, address, self.clock(), final)
            if error is not None:
                error.check_result = CheckResult(
                    check, False, attempts, elapsed, observed, mismatches, request=probe
                )
                raise error
            if final:
                break
            if not settled:
                self.sleep(self.backoff)
        return CheckResult(
            check,
            False,
            attempts,
            self.clock() - start,
            observed,
            mismatches,
            request=probe,
            matches=matches,
            settled=settled,
        )

    def _round(
        self, check: Check, address: Address, probe: ProbeRequest
    ) -> tuple[list[Observed], list[Mismatch], dict[str, float]]:
        workers = min(WEIGHT_CONCURRENCY, check.samples)
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(
                    pool.map(lambda _: self._send(check, address, probe), range(check.samples))
                )
        else:
            results = [self._send(check, address, probe) for _ in range(check.samples)]
        for obs in results:
            mismatches = [m for m in compare(check, obs) if m.field in ("status", "body")]
            if mismatches:
                return results, mismatches, {}
        shares, mismatches = compare_shares(check, [o.pod for o in results])
        return results, mismatches, shares

    def _run_weighted(
        self,
        check: Check,
        address: Address,
        probe: ProbeRequest,
        unreachable: Unreachable | None = None,
        settled: bool = False,
    ) -> CheckResult:
        start = self.clock()
        attempts = 0
        rounds = 0
        streak = _Streak()
        last: Observed | None = None
        mismatches: list[Mismatch] = []
        shares: dict[str, float] = {}
        while True:
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt
            sent = self.clock()
            results, mismatches, shares = self._round(check, address, probe)
            rounds += 1
            attempts += len(results)
            last = results[-1] if results else None
            elapsed = self.clock() - start
            streak.saw(results, sent)
            if not mismatches:
                return CheckResult(
                    check,
                    True,
                    attempts,
                    elapsed,
                    last,
                    [],
                    request=probe,
                    matches=1,
                    shares=shares,
                )
            backoff = 0.0 if settled else self.backoff
            final = elapsed + backoff >= check.timeout or (settled and rounds >= SETTLED_ROUNDS)
            error = streak.ask(unreachable, address, self.clock(), final)
            if error is not None:
                error.check_result = CheckResult(
                    check, False, attempts, elapsed, last, mismatches, request=probe
                )
                raise error
            if final:
                break
            if not settled:
                self.sleep(self.backoff)
        return CheckResult(
            check,
            False,
            attempts,
            self.clock() - start,
            last,
            mismatches,
            request=probe,
            shares=shares or None,
            settled=settled,
        )
