"""A loopback TCP proxy per validator that can cut any link: partitions for the cluster tests.

Why a proxy and not network namespaces or iptables: the tests run unprivileged-friendly on one
host, PostgreSQL stays reachable on 127.0.0.1 for every node, and nothing outside the test's
own processes is touched. How it tells links apart: node ``i`` listens on ``127.0.0.<2+i>`` and
dials peers *from* that address (``P2P_DIAL_SOURCE_HOST``); every validator's genesis address
is its proxy on ``127.0.0.1``. A connection arriving at proxy ``j`` from ``127.0.0.<2+i>`` is
the link ``i -> j``, whichever side dialled.

``cut([{0, 1}, {2, 3}])`` aborts every connection between the groups and refuses new ones
(both directions, so redials fail like a real partition); ``heal()`` lets them through again.
The proxy copies bytes and never looks inside them: the peers' TLS stays end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    listen_port: int
    target_host: str
    target_port: int


def source_index(host: str) -> int | None:
    parts = host.split(".")
    if len(parts) == 4 and parts[:3] == ["127", "0", "0"] and int(parts[3]) >= 2:
        return int(parts[3]) - 2
    return None


@dataclass
class LinkProxy:
    routes: dict[int, Route]
    blocked: set[frozenset[int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link-proxy",
                                        daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        self._links: set[tuple[int | None, int, asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.refused = 0

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> LinkProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def cut(self, groups: Iterable[Iterable[int]]) -> None:
        sets = [set(group) for group in groups]
        pairs = {frozenset((a, b)) for one in sets for other in sets if one is not other
                 for a in one for b in other}
        asyncio.run_coroutine_threadsafe(self._apply(pairs), self._loop).result(10)

    def heal(self) -> None:
        asyncio.run_coroutine_threadsafe(self._apply(set()), self._loop).result(10)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # ------------------------------------------------------------------ the proxy (its loop)

    async def _listen(self) -> None:
        for destination, route in self.routes.items():
            server = await asyncio.start_server(
                lambda r, w, d=destination: self._serve(r, w, d), "127.0.0.1",
                route.listen_port)
            self._servers.append(server)

    def _is_blocked(self, source: int | None, destination: int) -> bool:
        return source is not None and frozenset((source, destination)) in self.blocked

    async def _apply(self, pairs: set[frozenset[int]]) -> None:
        self.blocked = pairs
        for link in list(self._links):
            source, destination, client, upstream = link
            if self._is_blocked(source, destination):
                for writer in (client, upstream):
                    writer.transport.abort()
                self._links.discard(link)

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter, destination: int) -> None:
        peer = client_writer.get_extra_info("peername")
        source = source_index(peer[0]) if peer else None
        if self._is_blocked(source, destination):
            self.refused += 1
            client_writer.transport.abort()
            return
        route = self.routes[destination]
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                route.target_host, route.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        link = (source, destination, client_writer, upstream_writer)
        self._links.add(link)
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer),
                                 self._pipe(upstream_reader, client_writer))
        finally:
            self._links.discard(link)
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.transport.abort()

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for _source, _destination, client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
