"""The rules' caches start empty for every test: a test must see what the code computes now,
not what an earlier test had it compute (and under `make mutation`, not what the unmutated
code computed before the mutant was switched on)."""

from __future__ import annotations

import pytest

from usersecrets.rules.injection import volume_name
from usersecrets.rules.naming import copy_name


@pytest.fixture(autouse=True)
def _uncached() -> None:
    copy_name.cache_clear()
    volume_name.cache_clear()
