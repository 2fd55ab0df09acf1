#!/bin/sh
# What goes into the operator's image, run as root inside the image's Debian root filesystem.
# The one definition for both builders: the Dockerfile RUNs it, and the local node's image
# builder (dev/usersecrets_dev/image.py, no Docker) runs it in a chroot made by mmdebstrap.
#   rootfs.sh base DIR   Debian's python3, a venv in /opt/venv with the dependencies of the
#                        wheel in DIR (changes seldom: a layer, and a cache entry, of its own)
#   rootfs.sh app DIR    the wheel in DIR itself, then pip removed from the venv
set -eu
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 DEBIAN_FRONTEND=noninteractive
case "$1" in
base)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  python3 -m venv /opt/venv
  /opt/venv/bin/pip install --quiet "$2"/*.whl
  /opt/venv/bin/pip uninstall --quiet --yes usersecrets
  ;;
app)
  # Byte-compiled here (pip's default), because the root filesystem is read-only at run time.
  /opt/venv/bin/pip install --quiet --no-deps "$2"/*.whl
  /opt/venv/bin/pip uninstall --quiet --yes pip
  ;;
*)
  echo "usage: rootfs.sh base|app WHEEL_DIR" >&2
  exit 2
  ;;
esac
