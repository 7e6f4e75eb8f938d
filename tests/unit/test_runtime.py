"""The job runtime's allocator setting (infoplane.runtime.keep_freed_memory, release_freed_memory), seen
through glibc's own accounting (mallinfo2) in a fresh interpreter each: with it a 20 MiB tensor comes
from the heap and its memory stays for reuse until released; without it the tensor is mapped afresh
and given back when freed."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from infoplane import runtime

SCRIPT = """
import ctypes, sys, torch
from infoplane.runtime import keep_freed_memory, release_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
def resident():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) >> 10  # MiB
if sys.argv[1] == "keep":
    assert keep_freed_memory()
a = torch.ones(5 << 20)  # 20 MiB
mapped = libc.mallinfo2().hblkhd
del a
kept, before = libc.mallinfo2().fordblks, resident()
release_freed_memory()
print(mapped >> 20, kept >> 20, before - resident())
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_keep_freed_memory_serves_large_tensors_from_the_heap_and_keeps_them():
    src = Path(__file__).resolve().parents[2] / "src"
    out = {}
    for mode in ("keep", "default"):
        run = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120,
                             env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
        assert run.returncode == 0, run.stderr
        out[mode] = [int(v) for v in run.stdout.split()]
    mapped, kept, released = out["keep"]
    assert mapped < 20 and kept >= 20  # from the heap, and kept for the next tensor
    assert released >= 15  # until release_freed_memory gives it back (MiB; a peak measurement's start)
    mapped, kept, _ = out["default"]
    assert mapped >= 20 and kept < 20  # mapped afresh, and returned when freed


def test_keep_freed_memory_says_when_it_cannot_apply(monkeypatch):
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.keep_freed_memory() is False
    monkeypatch.setattr(runtime.sys, "platform", "linux")

    def no_glibc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(runtime.ctypes, "CDLL", no_glibc)
    assert runtime.keep_freed_memory() is False
