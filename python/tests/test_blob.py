"""Blobs from Python: a 1 GiB round trip in flat memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import ferry

# In a child process, so that its peak memory is its own.
ROUND_TRIP = textwrap.dedent(
    """
    import os, resource, sys, blake3, ferry
    src, dst = sys.argv[1], sys.argv[2]
    c = ferry.Client(os.environ["FERRY_URL"], os.environ.get("FERRY_TOKEN"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    blob = ferry.Blob.from_file(src, c)
    assert blob.size == os.path.getsize(src), blob
    again = ferry.Blob.from_file(src, c)  # the service has it: nothing sent
    assert again == blob
    c.download(blob, dst)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    h = blake3.blake3()
    with open(dst, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == blob.hash
    print(blob.hash, blob.size, base, peak)
    """
)


def test_a_gibibyte_round_trip_in_flat_memory(client: ferry.Client, tmp_path) -> None:
    src, dst = tmp_path / "big.bin", tmp_path / "back.bin"
    piece = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for i in range(1024):
            f.write(i.to_bytes(8, "little") + piece[8:])
    out = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, str(src), str(dst)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    blob_hash, size, base, peak = out.stdout.split()
    assert int(size) == 1 << 30
    grew_mib = (int(peak) - int(base)) / 1024
    print(f"1 GiB up and down; peak memory grew {grew_mib:.0f} MiB")
    # Bounded by gRPC's flow-control windows, not by the blob: a quarter of
    # it at most (26 MiB when the machine is quiet).
    assert grew_mib < 256, f"memory grew {grew_mib:.0f} MiB for a 1 GiB blob: not streamed"
    assert os.path.getsize(dst) == 1 << 30
    # A memoryview of part of a buffer goes without a copy of the whole.
    buf = bytearray(b"x" * 3_000_000)
    part = ferry.Blob.from_buffer(memoryview(buf)[1_000_000:2_000_000], client)
    assert part.size == 1_000_000 and client.download(part) == b"x" * 1_000_000
