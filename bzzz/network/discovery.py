"""Finding peers and staying connected: bootstrap, mDNS, the Kademlia DHT, redialling.

py-libp2p discovers but does not keep a mesh together: a failed dial blocks a
peer for 60 s and bootstrap discovery gives up on a peer after three failures.
The Dialer owns every dial instead: it remembers how to reach each peer it has
seen and a supervisor redials the ones that dropped, bootstrap peers at a fixed
pace, others with backoff until they are forgotten.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio
from libp2p.abc import IHost
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from trio_typing import TaskStatus

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
FORGET_AFTER_FAILURES = 20  # a non-bootstrap peer that failed this often in a row is dropped


@dataclass
class Reachability:
    addrs: list[Multiaddr]
    bootstrap: bool
    failures: int = 0
    next_attempt: float = 0.0
    sources: set[str] = field(default_factory=set)


class Dialer:
    def __init__(self, host: IHost, dial_timeout: float, reconnect_interval: float) -> None:
        self._host = host
        self._own_id = host.get_id()
        self._dial_timeout = dial_timeout
        self._interval = reconnect_interval
        self._book: dict[ID, Reachability] = {}
        self._dialling: set[ID] = set()
        self.dials = 0
        self.dial_failures = 0

    def add(self, peer: PeerInfo, source: str, *, bootstrap: bool = False) -> bool:
        """Remember how to reach `peer`. Returns True if the peer was new."""
        if peer.peer_id == self._own_id or not peer.addrs:
            return False
        entry = self._book.get(peer.peer_id)
        if entry is None:
            self._book[peer.peer_id] = Reachability(list(peer.addrs), bootstrap, sources={source})
            return True
        entry.bootstrap = entry.bootstrap or bootstrap
        entry.sources.add(source)
        for addr in peer.addrs:
            if addr not in entry.addrs:
                entry.addrs.insert(0, addr)  # newest first: a restarted peer's new port
        if entry.failures:
            entry.next_attempt = 0.0  # new information: try again at once
        return False

    def is_connected(self, peer_id: ID) -> bool:
        return bool(self._host.get_network().get_connections(peer_id))

    def known(self) -> dict[ID, Reachability]:
        return dict(self._book)

    async def dial(self, peer_id: ID) -> bool:
        entry = self._book.get(peer_id)
        if entry is None or peer_id in self._dialling:
            return False
        if self.is_connected(peer_id):
            return True
        self._dialling.add(peer_id)
        self.dials += 1
        network = self._host.get_network()
        try:
            network.unblock_peer(peer_id)  # type: ignore[attr-defined]  # lift the 60 s negative cache
            with trio.move_on_after(self._dial_timeout) as deadline:
                await self._host.connect(PeerInfo(peer_id, entry.addrs))
            if not deadline.cancelled_caught:
                self._succeeded(peer_id, entry)
                return True
            error = f"no answer within {self._dial_timeout:g} s"
        except Exception as exc:  # py-libp2p raises many unrelated types on a failed dial
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._dialling.discard(peer_id)
        self._failed(peer_id, entry, error)
        return False

    def _succeeded(self, peer_id: ID, entry: Reachability) -> None:
        if entry.failures:
            log.info("reconnected to %s after %d failed dials", peer_id, entry.failures)
        entry.failures = 0
        entry.next_attempt = 0.0

    def _failed(self, peer_id: ID, entry: Reachability, error: str) -> None:
        self.dial_failures += 1
        entry.failures += 1
        now = trio.current_time()
        if entry.bootstrap:
            entry.next_attempt = now + self._interval
        else:
            backoff = min(MAX_BACKOFF, self._interval * math.pow(2, min(entry.failures - 1, 10)))
            entry.next_attempt = now + backoff
            if entry.failures >= FORGET_AFTER_FAILURES:
                del self._book[peer_id]
                log.info("forgot %s after %d failed dials", peer_id, entry.failures)
                return
        level = logging.INFO if entry.failures in (1, 10, 100) else logging.DEBUG
        log.log(level, "dial to %s failed (%d in a row): %s", peer_id, entry.failures, error[:200])

    async def supervise(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every reconnect interval, dial each remembered peer that is due and not connected."""
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                now = trio.current_time()
                for peer_id, entry in list(self._book.items()):
                    if (
                        entry.next_attempt <= now
                        and peer_id not in self._dialling
                        and not self.is_connected(peer_id)
                    ):
                        nursery.start_soon(self.dial, peer_id)
                await trio.sleep(self._interval)


class DhtDiscovery:
    """Peers of one namespace find each other as providers of the namespace's key.

    Once this node has a first peer in its routing table it announces itself (and again
    every PROVIDE_EVERY seconds) and looks the key up: quickly while joining (0.5 s,
    doubling), then every `interval`. Either side finding the other is enough.
    """

    PROVIDE_EVERY = 300.0
    JOIN_POLL = 0.25
    FIRST_LOOKUP_DELAY = 0.5

    def __init__(self, dht: KadDHT, dialer: Dialer, namespace: str, interval: float) -> None:
        self._dht = dht
        self._dialer = dialer
        self._key = hashlib.sha256(f"/bzzz/{namespace}".encode()).hexdigest()
        self._interval = interval
        self._own_id = dht.host.get_id()
        self.found = 0

    async def add_peer(self, peer_id: ID) -> None:
        try:
            await self._dht.routing_table.add_peer(peer_id)
        except Exception:
            log.debug("routing table refused %s", peer_id, exc_info=True)

    async def run(self) -> None:
        while self._dht.get_routing_table_size() == 0:
            await trio.sleep(self.JOIN_POLL)
        delay = self.FIRST_LOOKUP_DELAY
        provided_at = -math.inf
        while True:
            if trio.current_time() - provided_at >= self.PROVIDE_EVERY:
                provided_at = trio.current_time()
                await self._provide()
            await self._look_up()
            await trio.sleep(delay)
            delay = min(self._interval, delay * 2)

    async def _provide(self) -> None:
        try:
            await self._dht.provide(self._key)
        except Exception as exc:  # the DHT raises many types; the next round retries
            log.debug("announcing in the DHT failed: %s", exc)

    async def _look_up(self) -> None:
        try:
            providers = await self._dht.find_providers(self._key, count=100)
        except Exception as exc:
            log.debug("DHT lookup failed: %s", exc)
            return
        for provider in providers:
            if provider.peer_id != self._own_id and self._dialer.add(provider, "dht"):
                self.found += 1
                log.info("found %s through the DHT", provider.peer_id)
                await self._dialer.dial(provider.peer_id)


def parse_txt_addresses(properties: dict[bytes, bytes | None]) -> PeerInfo | None:
    """A peer from mDNS TXT records `dnsaddr=/ip4/.../tcp/.../p2p/ID` (the libp2p mDNS spec)."""
    peer_id: ID | None = None
    addrs: list[Multiaddr] = []
    for key, value in properties.items():
        parsed = _parse_dnsaddr(value) if key.startswith(b"dnsaddr") else None
        if parsed is None:
            continue
        candidate, addr = parsed
        peer_id = peer_id or candidate
        if candidate == peer_id:
            addrs.append(addr)
    if peer_id is None or not addrs:
        return None
    return PeerInfo(peer_id, addrs)


def _parse_dnsaddr(value: bytes | None) -> tuple[ID, Multiaddr] | None:
    if not value:
        return None
    base, _, peer = value.decode(errors="replace").rpartition("/p2p/")
    try:
        return ID.from_base58(peer), Multiaddr(base)
    except Exception:  # hostile TXT records: anything may fail to parse
        return None


class MdnsDiscovery:
    """Advertise this peer and watch for others by mDNS (zeroconf threads).

    zeroconf calls back on its own thread; `found` must hop into trio itself.
    """

    def __init__(
        self,
        peer_id: ID,
        addrs: Sequence[Multiaddr],
        service_type: str,
        found: Callable[[PeerInfo], None],
    ) -> None:
        self._peer_id = peer_id
        self._addrs = [str(addr) for addr in addrs]
        self._service_type = service_type
        self._found = found
        self._zeroconf: object | None = None
        self._browser: object | None = None
        self._broadcaster: object | None = None

    def start(self) -> None:
        """Blocking (zeroconf probes the name): call from a thread."""
        from libp2p.discovery.mdns.broadcaster import PeerBroadcaster  # noqa: PLC0415
        from libp2p.discovery.mdns.utils import stringGen  # noqa: PLC0415
        from zeroconf import ServiceBrowser, ServiceListener, Zeroconf  # noqa: PLC0415

        zeroconf = Zeroconf()
        own_name = f"{stringGen(32)}.{self._service_type}"
        port = int(self._addrs[0].split("/tcp/")[1].split("/")[0]) if self._addrs else 0
        broadcaster = PeerBroadcaster(
            zeroconf=zeroconf,
            service_type=self._service_type,
            service_name=own_name,
            peer_id=str(self._peer_id),
            port=port,
            listen_addrs=self._addrs,
        )
        broadcaster.register()
        found = self._found
        own_id = self._peer_id

        class Listener(ServiceListener):
            def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
                if name == own_name:
                    return
                info = zc.get_service_info(type_, name, timeout=3000)
                if info is None:
                    return
                peer = parse_txt_addresses(dict(info.properties))
                if peer is not None and peer.peer_id != own_id:
                    found(peer)

            update_service = add_service

            def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
                pass

        self._browser = ServiceBrowser(zeroconf, self._service_type, listener=Listener())
        self._zeroconf = zeroconf
        self._broadcaster = broadcaster

    def stop(self) -> None:
        """Blocking (sends goodbye packets): call from a thread."""
        try:
            if self._browser is not None:
                self._browser.cancel()  # type: ignore[attr-defined]
            if self._broadcaster is not None:
                self._broadcaster.unregister()  # type: ignore[attr-defined]
        finally:
            if self._zeroconf is not None:
                self._zeroconf.close()  # type: ignore[attr-defined]
            self._zeroconf = self._browser = self._broadcaster = None


def mdns_service_type(psk: str | None) -> str:
    """Private networks advertise under their own service type (the libp2p mDNS spec's `_p2p-X`)."""
    if psk is None:
        return "_p2p._udp.local."
    return f"_p2p-{hashlib.sha256(psk.encode()).hexdigest()[:8]}._udp.local."
