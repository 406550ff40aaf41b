"""Pod addresses → who is sending (SPEC §6.1): a small in-memory index fed by the Pod watch.

Per pod only its uid, namespace, addresses and whether it is a trusted relay are kept (no labels, no
spec), so memory stays at a few hundred bytes per pod on big clusters (~330 with one address; namespaces
are interned by the Pod watch and the answers shared per namespace). Each address maps to the pod that
claims it, or to all of them when several do; the answer per address is computed when it changes, so a
lookup is one dict read:
- one namespace among its pods → that pod's namespace (or "relay" if any of them is a trusted relay);
- pods of different namespaces (a reused IP whose old pod's deletion has not arrived yet) → ambiguous.
Requests from an address the index does not know yet can wait for it (`wait_for`), bounded.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from sentryroute_forwarder.peers.address import canonical_ip
from sentryroute_forwarder.route.origin import ATTRIBUTE, UNKNOWN, Origin

__all__ = ["IndexedPod", "Lookup", "PeerIndex"]

#: A relay's resources say their own namespace, but namespaced entries still need an exact match.
RELAY = ATTRIBUTE


@dataclass(frozen=True, slots=True)
class IndexedPod:
    uid: str
    namespace: str
    addresses: tuple[str, ...]  # canonical IP texts from status.podIPs (or status.podIP)
    relay: bool = False


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Lookup:
    """What an address resolved to; `result` is the metric label (pod, relay, ambiguous)."""

    origin: Origin
    result: str


class PeerIndex:
    def __init__(self) -> None:
        self._pods: dict[str, IndexedPod] = {}
        # address → the pod claiming it, or uid → pod when several do (a reused IP): one dict per address
        # would be most of the index's memory, and addresses claimed twice are rare and short-lived.
        self._claims: dict[str, IndexedPod | dict[str, IndexedPod]] = {}
        self._answers: dict[str, Lookup] = {}  # address → resolved answer
        # namespace → its answer, shared by its pods' addresses; weak, so a namespace whose pods are all gone
        # leaves nothing behind (CI clusters make one per job, and the forwarder runs for months)
        self._pod_answers: weakref.WeakValueDictionary[str, Lookup] = weakref.WeakValueDictionary()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.synced = False  # True once a complete listing has been applied

    def __len__(self) -> int:
        return len(self._pods)

    @property
    def waiting(self) -> int:
        """Requests waiting for an address to appear (see `wait_for`)."""
        return sum(len(futures) for futures in self._waiters.values())

    def lookup(self, address: str) -> Lookup | None:
        """The answer for a peer address (any textual form), or None when no pod claims it."""
        found = self._answers.get(address)
        if found is None:
            canonical = canonical_ip(address)
            if canonical is not None and canonical != address:
                found = self._answers.get(canonical)
        return found

    async def wait_for(self, address: str, timeout: float) -> Lookup | None:  # noqa: ASYNC109 - a bound, by design
        """Wait up to `timeout` seconds for a pod to claim `address`; its answer, or None."""
        canonical = canonical_ip(address) or address
        found = self._answers.get(canonical)
        if found is not None:
            return found
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(canonical, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            pass
        finally:
            waiting = self._waiters.get(canonical)
            if waiting is not None:
                if future in waiting:
                    waiting.remove(future)
                if not waiting:
                    del self._waiters[canonical]
        return self._answers.get(canonical)

    # -- fed by the Pod watch -----------------------------------------------------------------------

    def replace_all(self, pods: Iterable[IndexedPod]) -> None:
        """A complete listing: forget what is not in it."""
        fresh = {pod.uid: pod for pod in pods}
        for uid in [uid for uid in self._pods if uid not in fresh]:
            self.remove(uid)
        for pod in fresh.values():
            self.upsert(pod)
        self.synced = True

    def upsert(self, pod: IndexedPod) -> None:
        old = self._pods.get(pod.uid)
        if old == pod:
            return
        if old is not None:
            self._unclaim(old)
        self._pods[pod.uid] = pod
        for address in pod.addresses:
            claims = self._claims.get(address)
            if claims is None or (isinstance(claims, IndexedPod) and claims.uid == pod.uid):
                self._claims[address] = pod
            elif isinstance(claims, IndexedPod):
                self._claims[address] = {claims.uid: claims, pod.uid: pod}
            else:
                claims[pod.uid] = pod
            self._resolve(address)

    def remove(self, uid: str) -> None:
        old = self._pods.pop(uid, None)
        if old is not None:
            self._unclaim(old)

    def _unclaim(self, pod: IndexedPod) -> None:
        for address in pod.addresses:
            claims = self._claims.get(address)
            if isinstance(claims, IndexedPod):
                if claims.uid == pod.uid:
                    del self._claims[address]
            elif claims is not None:
                claims.pop(pod.uid, None)
                if len(claims) == 1:
                    self._claims[address] = next(iter(claims.values()))
            self._resolve(address)

    def _resolve(self, address: str) -> None:
        claims = self._claims.get(address)
        if claims is None:
            self._answers.pop(address, None)
            return
        pods = (claims,) if isinstance(claims, IndexedPod) else tuple(claims.values())
        namespaces = {pod.namespace for pod in pods}
        if len(namespaces) > 1:
            self._answers[address] = _AMBIGUOUS
        elif any(pod.relay for pod in pods):
            self._answers[address] = _RELAY
        else:
            namespace = pods[0].namespace
            found = self._pod_answers.get(namespace)
            if found is None:
                found = Lookup(Origin.pod(namespace), "pod")
                self._pod_answers[namespace] = found
            self._answers[address] = found
        for future in self._waiters.pop(address, ()):
            if not future.done():
                future.set_result(None)


_AMBIGUOUS = Lookup(UNKNOWN, "ambiguous")
_RELAY = Lookup(RELAY, "relay")
