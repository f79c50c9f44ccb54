"""Give the heap pages a scrape freed back to the operating system.

Each scrape allocates and frees a payload's worth of strings; glibc keeps freed pages in the
process (only the top of the heap is returned by itself), so a sidecar's resident memory sat
2-4 MB above what it uses. ``malloc_trim(0)`` returns them; it takes about half a millisecond,
so the exporter calls it once things are quiet, a second after a scrape. A no-op where the C
library has no ``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import ctypes


def _load_malloc_trim():
    # The process's own symbols, libc's among them: no ctypes.util.find_library, which runs
    # `ldconfig -p` in a subprocess at start-up.
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> bool:
    """Whether memory could be offered back (glibc); the pages freed are not counted."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
