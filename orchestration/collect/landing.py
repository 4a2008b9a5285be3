"""The landing folder: append-only segment files of newline-delimited JSON records.

The collector appends each accepted request's records to the open segment and answers only once
they are on disk: a group commit writes everything waiting in one ``write`` and one ``fsync``,
so requests arriving during a flush share the next one. A segment is named by when it was opened
(``<UTC time>-<sequence>.open``, so names sort in time order) and sealed by renaming it to
``.ndjson`` when it reaches its size or age limit, or when the collector stops; a collector that
was killed leaves its last segment ``.open``, and the next one seals it on start.

Readers (the loader, the stream worker) read a segment from a byte offset up to its last complete
line. A line cut short by a crash was never acknowledged: in a sealed segment it is counted as
torn and skipped, never loaded.

One collector writes a landing folder at a time (it holds ``collector.lock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LANDING_ENV = "TESSERA_LANDING_DIR"
DEFAULT_LANDING = Path(".tessera") / "landing"
OPEN_SUFFIX = ".open"
SEALED_SUFFIX = ".ndjson"
LOCK_NAME = "collector.lock"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_SEGMENT_SECONDS = 300.0
#: Bytes accepted but not yet on disk beyond which the collector answers 429: the disk is not
#: keeping up, and clients should back off rather than fill the collector's memory.
DEFAULT_MAX_PENDING_BYTES = 32 * 1024 * 1024
#: Free space the landing disk keeps; below it the collector answers 429 rather than fail writes.
DEFAULT_MIN_FREE_BYTES = 256 * 1024 * 1024


def landing_folder(env: Mapping[str, str], given: str | None = None) -> Path:
    """The landing folder: ``given``, else ``TESSERA_LANDING_DIR``, else ``.tessera/landing``."""
    return Path(given or env.get(LANDING_ENV) or DEFAULT_LANDING)


class LandingError(RuntimeError):
    """The landing folder cannot be used; the message says why."""


class Backpressure(Exception):
    """The collector cannot take more now; ``retry_after`` is the seconds a client should wait."""

    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SegmentFile:
    path: Path

    @property
    def name(self) -> str:
        """The segment's name without its state suffix: stable across sealing."""
        return self.path.name.removesuffix(OPEN_SUFFIX).removesuffix(SEALED_SUFFIX)

    @property
    def sealed(self) -> bool:
        return self.path.suffix == SEALED_SUFFIX


def list_segments(folder: Path) -> list[SegmentFile]:
    """The segments of ``folder`` in the order they were written."""
    if not folder.is_dir():
        return []
    found = [
        SegmentFile(path)
        for path in folder.iterdir()
        if path.suffix in (OPEN_SUFFIX, SEALED_SUFFIX) and path.is_file()
    ]
    return sorted(found, key=lambda segment: segment.name)


@dataclass(frozen=True)
class SegmentRead:
    lines: list[bytes]
    end: int
    torn_bytes: int


def read_segment(segment: SegmentFile, offset: int) -> SegmentRead:
    """The complete lines of ``segment`` from byte ``offset``, and the offset after the last one.

    A sealed segment's trailing partial line (a write cut short by a crash, never acknowledged)
    is skipped and counted in ``torn_bytes``; an open segment's is left for the next read, as
    the collector may be writing it.
    """
    try:
        with segment.path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        # Sealed between listing and reading: the same bytes are in the sealed file.
        sealed = segment.path.with_suffix(SEALED_SUFFIX)
        if segment.sealed or not sealed.exists():
            raise
        return read_segment(SegmentFile(sealed), offset)
    last = data.rfind(b"\n")
    complete = data[: last + 1]
    rest = len(data) - len(complete)
    lines = complete.split(b"\n")[:-1] if complete else []
    if segment.sealed:
        return SegmentRead(lines, offset + len(data), rest)
    return SegmentRead(lines, offset + len(complete), 0)


def _fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LandingWriter:
    """Appends records to the landing folder with group commit; one per collector process."""

    def __init__(
        self,
        folder: Path,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    ) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.max_pending_bytes = max_pending_bytes
        self.min_free_bytes = min_free_bytes
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self._sequence = 0
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landing")
        self._free_checked_at = 0.0
        self._free_ok = True
        self.flushes = 0
        self.bytes_written = 0

    def open(self) -> None:
        """Take the folder's lock and seal what a previous collector left open."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LandingError(
                f"another collector is writing landing folder {self.folder} "
                f"(it holds {LOCK_NAME}); give each collector its own folder"
            ) from None
        self._lock_fd = fd
        for segment in list_segments(self.folder):
            if not segment.sealed:
                segment.path.rename(segment.path.with_suffix(SEALED_SUFFIX))
        _fsync_directory(self.folder)

    async def start(self) -> None:
        if self._lock_fd is None:
            self.open()
        self._wake = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_forever())

    async def stop(self) -> None:
        """Flush what is waiting, seal the open segment and release the folder."""
        if self._flusher is not None:
            self._closing = True
            assert self._wake is not None
            self._wake.set()
            await self._flusher
            self._flusher = None
        self._seal()
        self._io.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _check_free_space(self) -> None:
        now = time.monotonic()
        if now - self._free_checked_at > 1.0:
            self._free_checked_at = now
            self._free_ok = shutil.disk_usage(self.folder).free >= self.min_free_bytes
        if not self._free_ok:
            raise Backpressure("landing disk is nearly full", retry_after=30)

    async def append(self, lines: bytes) -> None:
        """Return once ``lines`` are on disk; raise ``Backpressure`` when the collector is full."""
        if self._closing:
            raise Backpressure("the collector is stopping", retry_after=1)
        if self._pending_bytes + len(lines) > self.max_pending_bytes:
            raise Backpressure("the landing disk is behind", retry_after=1)
        self._check_free_space()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((lines, done))
        self._pending_bytes += len(lines)
        assert self._wake is not None
        self._wake.set()
        await done

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            group, self._pending = self._pending, []
            size = sum(len(lines) for lines, _ in group)
            try:
                await loop.run_in_executor(
                    self._io, self._write, b"".join(lines for lines, _ in group)
                )
            except Exception as exc:
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)
            finally:
                self._pending_bytes -= size
            if self._pending or self._closing:
                self._wake.set()

    def _write(self, data: bytes) -> None:
        """Runs on the I/O thread: append and fsync, rotating first when the segment is full."""
        now = time.monotonic()
        if self._fd is not None and (
            self._size >= self.segment_bytes or now - self._opened_at >= self.segment_seconds
        ):
            self._seal()
        if self._fd is None:
            self._open_segment()
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # A full disk or an I/O error: these requests get a 5xx and are retried. Cut what
            # was half written and seal the segment, so the next write starts on a clean line
            # in a new one (a torn line would otherwise swallow the next acknowledged call).
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            with contextlib.suppress(OSError):
                self._seal()
            self._fd = None
            self._path = None
            raise
        self._size += len(data)
        self.flushes += 1
        self.bytes_written += len(data)

    def _open_segment(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self._sequence += 1
        self._path = self.folder / f"{stamp}-{self._sequence:06d}{OPEN_SUFFIX}"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        _fsync_directory(self.folder)
        self._opened_at = time.monotonic()
        self._size = 0

    def _seal(self) -> None:
        if self._fd is None or self._path is None:
            return
        os.close(self._fd)
        self._path.rename(self._path.with_suffix(SEALED_SUFFIX))
        _fsync_directory(self.folder)
        self._fd = None
        self._path = None

    def seal_if_idle(self) -> None:
        """Seal the open segment once it is past its age, though nothing new arrives."""
        if self._fd is not None and time.monotonic() - self._opened_at >= self.segment_seconds:
            self._io.submit(self._seal).result()
