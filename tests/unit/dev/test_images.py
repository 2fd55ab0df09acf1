"""The image builder without Docker: the Dockerfile's config, and archives ctr can import."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import IO

from usersecrets_dev.images import (
    DOCKERFILE,
    ImageConfig,
    dockerfile_config,
    layer_from_directory,
    write_archive,
)


def test_the_operator_image_takes_its_config_from_the_dockerfile() -> None:
    assert dockerfile_config(DOCKERFILE.read_text()) == ImageConfig(
        entrypoint=("usersecrets-operator",),
        env=(
            "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONUNBUFFERED=1",
            "PYTHONDONTWRITEBYTECODE=1",
            "HOME=/tmp",
        ),
        user="65532:65532",
        workdir="/tmp",
        exposed=("8443/tcp", "8080/tcp"),
    )


def test_only_the_final_stage_counts_and_continuations_join() -> None:
    text = """
FROM a AS build
USER 1
ENV X=build
FROM b
# a comment
ENV A=1 \\
    B="two words"
ENTRYPOINT ["run", "--flag"]
"""
    assert dockerfile_config(text, {}) == ImageConfig(
        entrypoint=("run", "--flag"), env=("A=1", "B=two words")
    )


def member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    """A regular file of the archive, which the test expects there."""
    found = tar.extractfile(name)
    assert found is not None, name
    return found


def test_an_archive_has_the_layer_the_config_and_the_name(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    layer = layer_from_directory(root)
    archive = write_archive(
        tmp_path / "image.tar", "example.local/tool:1", [layer], ImageConfig(user="7")
    )
    with tarfile.open(archive) as tar:
        manifest = json.load(member(tar, "manifest.json"))
        (entry,) = manifest
        assert entry["RepoTags"] == ["example.local/tool:1"]
        config = json.load(member(tar, entry["Config"]))
        assert config["config"]["User"] == "7"
        assert len(config["rootfs"]["diff_ids"]) == 1
        (path,) = entry["Layers"]
        with tarfile.open(fileobj=tar.extractfile(path)) as inner:
            members = {m.name: (m.uid, m.gid, m.mtime) for m in inner.getmembers()}
    assert members == {"bin": (0, 0, 0), "bin/tool": (0, 0, 0)}
