"""Compare a whole output with a committed golden file (``pytest --update-golden`` rewrites it)."""

from __future__ import annotations

from pathlib import Path


def assert_golden(path: Path, actual: str, update: bool) -> None:
    if update or not path.exists():
        if not update:
            raise AssertionError(f"{path} does not exist; run pytest --update-golden and review it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} differs from the golden file (pytest --update-golden, then review)"
