"""Container images built here without Docker or a registry, imported into the node's containerd.

An image is a docker-archive: uncompressed layer tars, a config and a manifest, which
`ctr images import` reads. The test image is busybox (Debian's static build); the sandbox is a
static `pause`; the operator's image is a Debian root filesystem from mmdebstrap with
hack/image/rootfs.sh run in it, the script the Dockerfile runs too, and the Dockerfile's final
stage gives its config (user, environment, entrypoint), so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usersecrets_dev.controlplane import REPO

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "usersecrets" / "images"
PAUSE = "usersecrets.local/pause:dev"
BUSYBOX = "usersecrets.local/busybox:dev"
#: The uid and gid the busybox image's USER line names (the `runAsNonRoot` case).
BUSYBOX_USER = 1001
BUSYBOX_NONROOT = "usersecrets.local/busybox-nonroot:dev"
ROOTFS_SCRIPT = REPO / "hack" / "image" / "rootfs.sh"
DOCKERFILE = REPO / "Dockerfile"
#: Debian's base image without `PATH` set in it; what `$PATH` expands to in the Dockerfile.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_SUITE = "bookworm"
#: Where the build's inputs go inside the image's root while rootfs.sh runs (removed after).
BUILD_DIR = "/tmp/usersecrets-build"  # noqa: S108  (a path in the image, not on this host)


class ImageError(RuntimeError):
    """An image could not be built."""


@dataclass(frozen=True)
class ImageConfig:
    """The part of an OCI image config that decides how its container runs."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)
    user: str = ""
    workdir: str = "/"
    exposed: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"Env": list(self.env), "WorkingDir": self.workdir}
        if self.entrypoint:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.user:
            config["User"] = self.user
        if self.exposed:
            config["ExposedPorts"] = {port: {} for port in self.exposed}
        return config


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Same tree, same bytes: no host owners or times in a layer."""
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def layer_from_directory(root: Path, owner: tuple[int, int] | None = (0, 0)) -> bytes:
    """An uncompressed layer tar of everything under `root`; owned by `owner` if given."""

    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.ischr() or info.isblk():
            return None  # the runtime gives every container its own /dev
        if owner is not None:
            info.uid, info.gid = owner
        return _normalize(info)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(root)):
            tar.add(root / name, arcname=name, filter=normalize)
    return buffer.getvalue()


def write_archive(path: Path, reference: str, layers: Iterable[bytes], config: ImageConfig) -> Path:
    """A docker-archive (what `docker save` writes) of `layers` under the name `reference`."""
    layers = list(layers)
    digests = [hashlib.sha256(layer).hexdigest() for layer in layers]
    image = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config.as_dict(),
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in digests]},
            "history": [{"created_by": "usersecrets_dev.images"} for _ in layers],
        },
        sort_keys=True,
    ).encode()
    image_name = hashlib.sha256(image).hexdigest() + ".json"
    manifest = json.dumps(
        [
            {
                "Config": image_name,
                "RepoTags": [reference],
                "Layers": [f"{d}/layer.tar" for d in digests],
            }
        ]
    ).encode()
    entries = [
        (image_name, image),
        *((f"{d}/layer.tar", layer) for d, layer in zip(digests, layers, strict=True)),
        ("manifest.json", manifest),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return path


def pause_image(pause_binary: Path, out: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(pause_binary, Path(tmp) / "pause")
        layer = layer_from_directory(Path(tmp))
    return write_archive(out, PAUSE, [layer], ImageConfig(entrypoint=("/pause",)))


BUSYBOX_APPLETS = ("sh", "cat", "echo", "id", "ls", "stat", "sha256sum", "sleep", "env", "sed")


def busybox_images(out_dir: Path, busybox: Path = Path("/bin/busybox")) -> list[Path]:
    """busybox as root, and the same with a non-root `USER` only the image sets."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            (root / directory).mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        for applet in BUSYBOX_APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        user = BUSYBOX_USER
        (root / "etc" / "passwd").write_text(
            f"root:x:0:0:root:/:/bin/sh\nuser:x:{user}:{user}:user:/tmp:/bin/sh\n"
        )
        (root / "etc" / "group").write_text(f"root:x:0:\nuser:x:{user}:\n")
        (root / "tmp").chmod(0o1777)
        layer = layer_from_directory(root)
    shell = ImageConfig(cmd=("/bin/sh",), env=("PATH=/bin",))
    return [
        write_archive(out_dir / "busybox.tar", BUSYBOX, [layer], shell),
        write_archive(
            out_dir / "busybox-nonroot.tar",
            BUSYBOX_NONROOT,
            [layer],
            ImageConfig(cmd=("/bin/sh",), env=("PATH=/bin",), user=f"{user}:{user}"),
        ),
    ]


# -- the operator's image -------------------------------------------------------------------


def _logical_lines(text: str) -> list[str]:
    """Dockerfile lines with continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return lines


def dockerfile_config(text: str, base_env: Mapping[str, str] | None = None) -> ImageConfig:
    """The config the Dockerfile's final stage gives its image: ENV, USER, WORKDIR, ENTRYPOINT."""
    env = dict(base_env) if base_env is not None else {"PATH": DEFAULT_PATH}
    lines = _logical_lines(text)
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    config: dict[str, Any] = {}
    exposed: list[str] = []
    for line in lines[last_from + 1 :]:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), value)
        elif instruction == "USER":
            config["user"] = rest.strip()
        elif instruction == "WORKDIR":
            config["workdir"] = rest.strip()
        elif instruction in ("ENTRYPOINT", "CMD"):
            key = "entrypoint" if instruction == "ENTRYPOINT" else "cmd"
            config[key] = tuple(json.loads(rest))
        elif instruction == "EXPOSE":
            exposed += [p if "/" in p else f"{p}/tcp" for p in rest.split()]
    return ImageConfig(
        env=tuple(f"{k}={v}" for k, v in env.items()), exposed=tuple(exposed), **config
    )


def _run(command: list[str], **kwargs: Any) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise ImageError(
            f"{shlex.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        )


def _digest(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


def build_wheel(out_dir: Path) -> Path:
    """The project's wheel, from the working tree (what the Dockerfile's build stage makes)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(out_dir),
            str(REPO),
        ]
    )
    return out_dir


def _host_ca_bundle() -> Path | None:
    """The trust store pip uses here, for pip in the chroot while building (not in the image)."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _chroot_script(root: Path, phase: str, wheels: Path) -> None:
    """Runs `rootfs.sh PHASE` in `root` with the wheel (and only while building, a CA bundle)."""
    build = root / BUILD_DIR.lstrip("/")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    try:
        shutil.copy2(ROOTFS_SCRIPT, build / "rootfs.sh")
        shutil.copytree(wheels, build / "dist")
        env = {"PATH": DEFAULT_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
        ca = _host_ca_bundle()
        if ca is not None:
            shutil.copy2(ca, build / "ca.crt")
            env["PIP_CERT"] = f"{BUILD_DIR}/ca.crt"
        mounts = [("proc", root / "proc"), ("/dev", root / "dev")]
        if phase == "base":
            shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
        for source, target in mounts:
            target.mkdir(exist_ok=True)
            flags = ["-t", "proc", "proc"] if source == "proc" else ["--bind", source]
            _run(["mount", *flags, str(target)])
        try:
            _run(
                [
                    "chroot",
                    str(root),
                    "sh",
                    f"{BUILD_DIR}/rootfs.sh",
                    phase,
                    f"{BUILD_DIR}/dist",
                ],
                env=env,
            )
        finally:
            for _, target in reversed(mounts):
                subprocess.run(["umount", "--lazy", str(target)], check=False)
    finally:
        shutil.rmtree(build, ignore_errors=True)
        (root / "etc" / "resolv.conf").unlink(missing_ok=True)


def _base_rootfs(wheels: Path) -> Path:
    """Debian + python3 + a venv with the dependencies: cached by what decides its contents."""
    key = _digest(ROOTFS_SCRIPT, REPO / "pyproject.toml", extra=BASE_SUITE)
    base = CACHE / f"operator-base-{BASE_SUITE}-{key}"
    if (base / "opt" / "venv" / "bin" / "python").exists():
        return base
    tmp = base.with_name(base.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    sources = [
        s
        for s in (
            "/etc/apt/sources.list",
            *map(str, Path("/etc/apt/sources.list.d").glob("*.sources")),
            *map(str, Path("/etc/apt/sources.list.d").glob("*.list")),
        )
        if Path(s).is_file() and Path(s).stat().st_size
    ]
    # This machine's own Debian sources (its mirror and its security suite).
    _run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--mode=root",
            BASE_SUITE,
            str(tmp),
            *sources,
        ]
    )
    _chroot_script(tmp, "base", wheels)
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)
    return base


def operator_image(reference: str, out: Path) -> Path:
    """The operator's image under `reference` (the chart's default), cached by its inputs."""
    key = _digest(
        ROOTFS_SCRIPT,
        DOCKERFILE,
        REPO / "pyproject.toml",
        REPO / "operator" / "usersecrets",
        extra=reference,
    )
    archive = CACHE / f"operator-{key}.tar"
    if not archive.exists():
        with tempfile.TemporaryDirectory(dir=CACHE.parent) as tmp:
            wheels = build_wheel(Path(tmp) / "dist")
            base = _base_rootfs(wheels)
            root = Path(tmp) / "root"
            _run(["cp", "-a", str(base), str(root)])
            _chroot_script(root, "app", wheels)
            config = dockerfile_config(DOCKERFILE.read_text())
            for stale in CACHE.glob("operator-*.tar"):
                stale.unlink()
            write_archive(archive, reference, [layer_from_directory(root, owner=None)], config)
    shutil.copy2(archive, out)
    return out
