#!/usr/bin/env bash
# Makes a virtualenv with ferry's peers from PyPI (Parsl, Dask distributed,
# Ray) and runs peers.py in it with the arguments given: one JSON line a peer.
#   FERRY_PEERS_VENV  where the virtualenv lives (default: target/peers-venv)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${FERRY_PEERS_VENV:-$here/../../target/peers-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import parsl, distributed, ray, grpc, msgpack, blake3' 2>/dev/null; then
  echo "bench/peers: installing Parsl, Dask distributed and Ray into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
fi
# Parsl starts its interchange and workers as commands of the virtualenv.
export PATH="$venv/bin:$PATH"
exec "$venv/bin/python" "$here/peers.py" "$@"
