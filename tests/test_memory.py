"""Freed heap memory goes back to the operating system (glibc keeps it otherwise)."""

from __future__ import annotations

from pathlib import Path

from infersight.exporter.memory import release_free_memory


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_freed_heap_pages_are_returned() -> None:
    blocks = [bytes(2000) for _ in range(40_000)]  # 80 MB of malloc'd (not mmap'd) blocks
    pinned = bytes(2000)  # allocated last: the heap's top stays in use, so free() alone returns nothing
    del blocks
    before = _rss_mib()
    assert release_free_memory() is True
    after = _rss_mib()
    assert before - after > 50, (before, after)
    del pinned
