"""One authenticated connection to one peer: a bounded send queue and its writer task.

The writer task owns ``writer.write`` for queued frames; control frames that must go out at
once (goodbye before a close) are written directly, which is safe because each ``write`` call
hands a whole frame to the transport. A full send queue drops the frame rather than blocking
the sender: one slow peer must not stall broadcasts to the others, and consensus recovers lost
messages by its own timeouts and block sync. The queue is bounded in frames and in bytes (a
single frame larger than the byte bound still goes when the queue is empty), so a stalled peer
costs at most that much memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from apps.node.p2p.control import Goodbye, encode_control
from apps.node.p2p.framing import Topic, encode_frame

_WRITE_ERRORS = (ConnectionError, OSError, ssl.SSLError, RuntimeError)
_COALESCE_BYTES = 256 * 1024


class Link:
    """An authenticated link. ``dialer`` is the id of the node that opened the TCP connection."""

    def __init__(self, *, peer_id: str, dialer: str, outbound: bool,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 queue_size: int, queue_bytes: int, now: float) -> None:
        self.peer_id = peer_id
        self.dialer = dialer
        self.outbound = outbound
        self.reader = reader
        self.writer = writer
        self.last_activity = now
        self.in_callback = False
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._max_queued_bytes = queue_bytes
        self._queued_bytes = 0
        self._writer_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer_task = asyncio.create_task(self._write_loop(),
                                                name=f"p2p-write-{self.peer_id}")

    def enqueue(self, frame: bytes) -> bool:
        """Queue a frame; False when closed or full (by count, or by bytes unless empty)."""
        if self.closed.is_set():
            return False
        if self._queued_bytes and self._queued_bytes + len(frame) > self._max_queued_bytes:
            return False
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        self._queued_bytes += len(frame)
        return True

    async def _write_loop(self) -> None:
        try:
            while True:
                batch = [await self._queue.get()]
                size = len(batch[0])
                # Coalesce what is already queued into one TLS write (fewer records/syscalls).
                while size < _COALESCE_BYTES and not self._queue.empty():
                    frame = self._queue.get_nowait()
                    batch.append(frame)
                    size += len(frame)
                self._queued_bytes -= size
                self.writer.write(batch[0] if len(batch) == 1 else b"".join(batch))
                await self.writer.drain()
        except _WRITE_ERRORS:
            self.close()

    async def flush(self, timeout: float) -> None:
        """Wait (bounded) until queued frames are handed to the socket."""
        async def drained() -> None:
            while not self._queue.empty() and not self.closed.is_set():
                await asyncio.sleep(0.01)
            with contextlib.suppress(*_WRITE_ERRORS):
                await self.writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained(), timeout)

    def close(self, goodbye: str | None = None) -> None:
        """Close now; idempotent. A goodbye tells the peer why (it is not penalised for it)."""
        if self.closed.is_set():
            return
        self.closed.set()
        if self._writer_task is not None and self._writer_task is not asyncio.current_task():
            self._writer_task.cancel()
        with contextlib.suppress(*_WRITE_ERRORS):
            if goodbye is not None and not self.writer.is_closing():
                self.writer.write(encode_frame(Topic.CONTROL, encode_control(Goodbye(goodbye))))
            self.writer.close()

    async def wait_closed(self, timeout: float) -> None:
        """Wait (bounded) for the TLS close; abort the socket if the peer does not answer."""
        try:
            await asyncio.wait_for(self.writer.wait_closed(), timeout)
        except TimeoutError:
            self.writer.transport.abort()
        except _WRITE_ERRORS:
            pass
        if self._writer_task is not None:
            await asyncio.wait({self._writer_task})
