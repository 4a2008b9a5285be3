"""Landing segments: group commit, sealing, torn tails and one collector per folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from orchestration.collect.landing import (
    Backpressure,
    LandingError,
    LandingWriter,
    SegmentFile,
    list_segments,
    read_segment,
)


def _write(writer: LandingWriter, payloads: list[bytes]) -> None:
    async def run() -> None:
        await writer.start()
        await asyncio.gather(*(writer.append(payload) for payload in payloads))
        await writer.stop()

    asyncio.run(run())


def test_concurrent_appends_share_flushes_and_all_reach_the_sealed_segment(tmp_path: Path) -> None:
    writer = LandingWriter(tmp_path)
    payloads = [f'{{"n": {i}}}\n'.encode() for i in range(500)]
    _write(writer, payloads)
    [segment] = list_segments(tmp_path)
    assert segment.sealed
    read = read_segment(segment, 0)
    assert sorted(read.lines) == sorted(payload[:-1] for payload in payloads)
    # 500 appends waiting together are written by far fewer write+fsync rounds.
    assert 1 <= writer.flushes < 50


def test_a_full_segment_is_sealed_and_the_next_one_opened(tmp_path: Path) -> None:
    writer = LandingWriter(tmp_path, segment_bytes=50)

    async def run() -> None:
        await writer.start()
        for i in range(10):
            await writer.append(b'{"payload": "' + str(i).encode() * 40 + b'"}\n')
        await writer.stop()

    asyncio.run(run())
    segments = list_segments(tmp_path)
    assert len(segments) == 10 and all(segment.sealed for segment in segments)
    lines = [line for segment in segments for line in read_segment(segment, 0).lines]
    assert [line[13:14] for line in lines] == [str(i).encode() for i in range(10)]


def test_an_open_segment_is_read_to_its_last_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "20261207T120000000000Z-000001.open"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    read = read_segment(SegmentFile(path), 0)
    assert read.lines == [b'{"a": 1}', b'{"b": 2}'] and read.end == 18 and read.torn_bytes == 0
    # The collector finishes the line: the next read starts where the last one stopped.
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3}\n')
    assert read_segment(SegmentFile(path), read.end).lines == [b'{"c": 3}']


def test_a_killed_collectors_segment_is_sealed_on_restart_and_its_torn_tail_skipped(
    tmp_path: Path,
) -> None:
    left = tmp_path / "20261207T120000000000Z-000001.open"
    left.write_bytes(b'{"a": 1}\n{"b": ')
    writer = LandingWriter(tmp_path)
    writer.open()
    [segment] = list_segments(tmp_path)
    assert segment.sealed and segment.name == "20261207T120000000000Z-000001"
    read = read_segment(segment, 0)
    assert read.lines == [b'{"a": 1}'] and read.torn_bytes == 6 and read.end == 15
    asyncio.run(writer.stop())


def test_a_second_collector_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    first = LandingWriter(tmp_path)
    first.open()
    with pytest.raises(LandingError, match="another collector is writing"):
        LandingWriter(tmp_path).open()
    asyncio.run(first.stop())
    second = LandingWriter(tmp_path)
    second.open()
    asyncio.run(second.stop())


def test_appends_beyond_the_pending_limit_get_backpressure(tmp_path: Path) -> None:
    writer = LandingWriter(tmp_path, max_pending_bytes=100)

    async def run() -> list[object]:
        await writer.start()
        outcomes = await asyncio.gather(
            *(writer.append(b"x" * 60 + b"\n") for _ in range(3)), return_exceptions=True
        )
        await writer.stop()
        return outcomes

    outcomes = asyncio.run(run())
    refused = [outcome for outcome in outcomes if isinstance(outcome, Backpressure)]
    assert len(refused) == 2 and refused[0].retry_after == 1
    [segment] = list_segments(tmp_path)
    assert len(read_segment(segment, 0).lines) == 1


def test_a_nearly_full_disk_gets_backpressure(tmp_path: Path) -> None:
    writer = LandingWriter(tmp_path, min_free_bytes=1 << 60)

    async def run() -> None:
        await writer.start()
        try:
            with pytest.raises(Backpressure, match="nearly full"):
                await writer.append(b"{}\n")
        finally:
            await writer.stop()

    asyncio.run(run())
    assert list_segments(tmp_path) == []


def test_a_failed_write_is_cut_and_the_next_one_starts_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = LandingWriter(tmp_path)
    real_fsync = os.fsync
    failing = {"left": 0}

    def fsync(fd: int) -> None:
        if failing["left"]:
            failing["left"] -= 1
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    async def run() -> None:
        await writer.start()
        await writer.append(b'{"a": 1}\n')
        failing["left"] = 1
        with pytest.raises(OSError, match="No space left"):
            await writer.append(b'{"b": 2}\n')
        await writer.append(b'{"c": 3}\n')
        await writer.stop()

    asyncio.run(run())
    first, second = list_segments(tmp_path)
    # The refused write is gone; the acknowledged ones are whole, each on its own line.
    assert read_segment(first, 0).lines == [b'{"a": 1}']
    assert read_segment(first, 0).torn_bytes == 0
    assert read_segment(second, 0).lines == [b'{"c": 3}']
