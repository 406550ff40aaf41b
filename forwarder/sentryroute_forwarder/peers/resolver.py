"""Per request: the `Origin` of a peer address in `--namespace-from peer` mode (SPEC §6.1).

A known address is one dict read. An address no pod claims yet waits up to `--peer-wait` for the watch
(a new pod can send before its event arrives); if it stays unknown it is remembered as unknown for a
while (bounded), so outside clients do not wait on every request. A loopback peer that is no pod means a
mesh sidecar or local proxy hides the real client: logged loudly, counted as `local`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from sentryroute_forwarder.log_throttle import LogThrottle
from sentryroute_forwarder.metrics import ForwarderMetrics
from sentryroute_forwarder.peers.address import canonical_ip, is_loopback
from sentryroute_forwarder.peers.index import PeerIndex
from sentryroute_forwarder.route.origin import UNKNOWN, Origin

__all__ = ["PeerResolver", "PodsNotListed"]

log = logging.getLogger(__name__)


class PodsNotListed(Exception):
    """The first Pod listing has not completed: no request can be attributed yet (answer 503)."""


class PeerResolver:
    def __init__(
        self,
        index: PeerIndex,
        *,
        metrics: ForwarderMetrics,
        wait: float,
        unknown_ttl: float = 60.0,
        unknown_capacity: int = 4096,
    ) -> None:
        self.index = index
        self._metrics = metrics
        self._wait = wait
        self._unknown_ttl = unknown_ttl
        self._unknown_capacity = unknown_capacity
        self._unknown: OrderedDict[str, float] = OrderedDict()  # address → monotonic time it was found unknown
        self._warn = LogThrottle(interval=60.0, capacity=16)
        self._counters = {
            result: metrics.peer_lookups.labels(result) for result in ("pod", "relay", "unknown", "ambiguous", "local")
        }

    def origin_now(self, host: str | None) -> Origin | None:
        """The origin of a request from `host` if it is known without waiting (one dict read), else None: an
        address no pod has claimed yet, to be waited for with `origin_of`. Raises PodsNotListed before the
        first listing. Called on the event loop."""
        if not self.index.synced:
            raise PodsNotListed
        if host is None:
            return self._unknown_origin(None)
        found = self.index.lookup(host)
        if found is not None:
            self._counters[found.result].inc()
            return found.origin
        if self._recently_unknown(host):
            return self._unknown_origin(host)
        return None

    async def origin_of(self, host: str | None) -> Origin:
        """The origin of a request from `host` (None: not an IP peer), waiting up to `--peer-wait` for an
        address no pod has claimed yet; raises PodsNotListed before the first listing."""
        origin = self.origin_now(host)
        if origin is not None:
            return origin
        assert host is not None
        found = await self.index.wait_for(host, self._wait)
        if found is None:
            self._remember_unknown(host)
            return self._unknown_origin(host)
        self._counters[found.result].inc()
        return found.origin

    def _unknown_origin(self, host: str | None) -> Origin:
        canonical = canonical_ip(host) if host is not None else None
        if canonical is not None and is_loopback(canonical):
            self._counters["local"].inc()
            if self._warn.add("local", 1, now=time.monotonic()):
                log.error(
                    "--namespace-from peer: a request came from the local address %s, which is no pod: a service-mesh "
                    "sidecar (REDIRECT mode) or a node-local proxy hides the real client, so its data has no "
                    "namespace. Exclude the receiver ports from interception or use TPROXY mode (docs/helm.md)",
                    canonical,
                )
        else:
            self._counters["unknown"].inc()
        return UNKNOWN

    def _recently_unknown(self, host: str) -> bool:
        since = self._unknown.get(host)
        if since is None:
            return False
        if time.monotonic() - since > self._unknown_ttl:
            del self._unknown[host]
            return False
        return True

    def _remember_unknown(self, host: str) -> None:
        self._unknown[host] = time.monotonic()
        self._unknown.move_to_end(host)
        while len(self._unknown) > self._unknown_capacity:
            self._unknown.popitem(last=False)
