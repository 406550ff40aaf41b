"""The peer index behind `--namespace-from peer` (SPEC §6.1): addresses → namespace, relays, ambiguity, waiting."""

from __future__ import annotations

import asyncio
import tracemalloc

from sentryroute_forwarder.peers.address import canonical_ip, grpc_peer_host, http_peer_host
from sentryroute_forwarder.peers.index import IndexedPod, PeerIndex
from sentryroute_forwarder.peers.pod_watch import indexed_pod
from sentryroute_forwarder.route.origin import UNKNOWN, Origin

from sentryroute.selectors import parse_label_selector


def pod_object(uid: str, namespace: str, *ips: str, labels: dict | None = None, **extra: object) -> dict:
    status: dict = {"phase": extra.pop("phase", "Running"), "podIPs": [{"ip": ip} for ip in ips]}
    if ips:
        status["podIP"] = ips[0]
    return {
        "metadata": {"uid": uid, "namespace": namespace, "name": uid, "labels": labels or {}},
        "spec": dict(extra),
        "status": status,
    }


def test_addresses_resolve_to_their_pods_namespace_in_any_textual_form():
    index = PeerIndex()
    index.upsert(IndexedPod("a", "shop", ("127.0.0.5",)))
    index.upsert(IndexedPod("b", "bank", ("::1", "127.0.0.6")))
    assert index.lookup("127.0.0.5").origin == Origin.pod("shop")
    assert index.lookup("::ffff:127.0.0.5").origin == Origin.pod("shop")  # a dual-stack listener's view
    assert index.lookup("0:0:0:0:0:0:0:1").origin == Origin.pod("bank")
    assert index.lookup("127.0.0.6").result == "pod"
    assert index.lookup("127.0.0.7") is None


def test_a_reused_address_is_ambiguous_until_the_old_pod_is_gone():
    index = PeerIndex()
    index.upsert(IndexedPod("old", "shop", ("10.0.0.1",)))
    index.upsert(IndexedPod("new", "bank", ("10.0.0.1",)))  # the new pod's event came before the old one's deletion
    assert index.lookup("10.0.0.1").origin is UNKNOWN and index.lookup("10.0.0.1").result == "ambiguous"
    index.remove("old")
    assert index.lookup("10.0.0.1").origin == Origin.pod("bank")
    index.upsert(IndexedPod("new", "bank", ("10.0.0.2",)))  # its address changed
    assert index.lookup("10.0.0.1") is None and index.lookup("10.0.0.2").origin == Origin.pod("bank")


def test_two_pods_of_one_namespace_on_one_address_are_not_ambiguous_and_relays_are_trusted():
    index = PeerIndex()
    index.upsert(IndexedPod("a", "shop", ("10.0.0.1",)))
    index.upsert(IndexedPod("b", "shop", ("10.0.0.1",)))
    assert index.lookup("10.0.0.1").origin == Origin.pod("shop")
    index.upsert(IndexedPod("agent", "monitoring", ("10.0.0.9",), relay=True))
    relay = index.lookup("10.0.0.9")
    assert relay.result == "relay" and relay.origin.trust_attribute


def test_a_complete_listing_replaces_what_was_known():
    index = PeerIndex()
    index.upsert(IndexedPod("gone", "shop", ("10.0.0.1",)))
    assert not index.synced
    index.replace_all([IndexedPod("kept", "bank", ("10.0.0.2",))])
    assert index.synced and len(index) == 1
    assert index.lookup("10.0.0.1") is None and index.lookup("10.0.0.2").origin == Origin.pod("bank")


async def test_a_request_waits_briefly_for_a_pod_the_watch_has_not_delivered_yet():
    index = PeerIndex()
    waiting = asyncio.create_task(index.wait_for("127.0.0.8", 10.0))
    await asyncio.sleep(0)
    index.upsert(IndexedPod("late", "shop", ("127.0.0.8",)))
    assert (await waiting).origin == Origin.pod("shop")
    assert await index.wait_for("127.0.0.9", 0.01) is None  # bounded: then it is unknown


def test_pod_objects_keep_only_what_the_index_needs():
    relays = parse_label_selector("app.kubernetes.io/name=otel-agent")
    pod = indexed_pod(pod_object("u1", "shop", "10.0.0.1", "fd00::1"), relays)
    assert pod == IndexedPod("u1", "shop", ("10.0.0.1", "fd00::1"), relay=False)
    agent = indexed_pod(pod_object("u2", "mon", "10.0.0.2", labels={"app.kubernetes.io/name": "otel-agent"}), relays)
    assert agent is not None and agent.relay
    # No address of its own: host network, finished, not scheduled yet.
    assert indexed_pod(pod_object("u3", "shop", "192.168.1.1", hostNetwork=True), relays) is None
    assert indexed_pod(pod_object("u4", "shop", "10.0.0.4", phase="Succeeded"), relays) is None
    assert indexed_pod(pod_object("u5", "shop"), relays) is None
    legacy = pod_object("u6", "shop")
    legacy["status"]["podIP"] = "10.0.0.6"  # only the singular field
    assert indexed_pod(legacy, None) == IndexedPod("u6", "shop", ("10.0.0.6",))


def test_peer_addresses_from_aiohttp_and_grpc():
    assert http_peer_host(("127.0.0.5", 4000)) == "127.0.0.5"
    assert http_peer_host(("::1", 4000, 0, 0)) == "::1"
    assert http_peer_host(None) is None and http_peer_host("/tmp/socket") is None
    assert grpc_peer_host("ipv4:127.0.0.5:4000") == "127.0.0.5"
    assert grpc_peer_host("ipv6:[::1]:4000") == "::1"
    assert grpc_peer_host("ipv6:%5B::1%5D:4000") == "::1"
    assert grpc_peer_host("unix:/tmp/socket") is None and grpc_peer_host("") is None
    assert canonical_ip("::ffff:10.1.2.3") == "10.1.2.3" and canonical_ip("FD00::0001") == "fd00::1"
    assert canonical_ip("not-an-ip") is None


def test_namespaces_that_are_gone_leave_nothing_behind():
    """Namespaces come and go (a CI cluster makes one per job): once no pod of a namespace is indexed, its
    shared answer is released, so a forwarder running for months does not grow with every namespace it saw."""
    index = PeerIndex()
    index.upsert(IndexedPod("keep", "shop", ("10.0.0.1",)))
    shared = index.lookup("10.0.0.1")

    def churn(first: int) -> None:
        for n in range(first, first + 2000):
            index.upsert(IndexedPod(f"job-{n}", f"ci-{n}", (f"10.1.{n // 250}.{n % 250}",)))
            index.remove(f"job-{n}")

    churn(0)  # warm: whatever one-off allocations there are
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        churn(2000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, f"{grown} bytes kept for 2,000 namespaces that are gone"
    assert index.lookup("10.0.0.1") is shared  # still one answer shared by the namespace's addresses
    index.upsert(IndexedPod("keep2", "shop", ("10.0.0.3",)))
    assert index.lookup("10.0.0.3") is shared
