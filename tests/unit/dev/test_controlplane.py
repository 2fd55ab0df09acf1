"""The local control plane leaves no directory of its own behind (the bench made one per run)."""

from __future__ import annotations

import shutil
from pathlib import Path

from usersecrets_dev.controlplane import ControlPlane


def test_the_directory_it_made_is_removed_once_done() -> None:
    plane = ControlPlane(Path("/nonexistent"))
    assert plane.workdir.is_dir()
    plane.__exit__(None, None, None)
    assert not plane.workdir.exists()


def test_the_directory_of_a_failed_block_is_kept_for_its_logs() -> None:
    plane = ControlPlane(Path("/nonexistent"))
    try:
        plane.__exit__(RuntimeError, RuntimeError("failed"), None)
        assert plane.workdir.is_dir()
    finally:
        shutil.rmtree(plane.workdir)


def test_a_directory_it_was_given_is_left_to_its_owner(tmp_path: Path) -> None:
    ControlPlane(Path("/nonexistent"), tmp_path).__exit__(None, None, None)
    assert tmp_path.is_dir()
