"""blocks/allocator.py: memory a batch frees stays in the process for the next one (glibc)."""

import json
import platform
import subprocess
import sys

import pytest

MB = 1024 * 1024
# a fresh process each (mallopt is process-wide): hold a 20 MB block, free it, report what glibc did with it
HOLD_AND_FREE = """
import ctypes, ctypes.util, json, sys
from scribe_rm.blocks.allocator import keep_freed_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
kept = keep_freed_memory(256 << 20) if sys.argv[1] == "keep" else None
before = libc.mallinfo2()
block = libc.malloc(20 << 20)
held = libc.mallinfo2()
libc.free(block)
freed = libc.mallinfo2()
print(json.dumps({"kept": kept, "mmapped_for_it": held.hblkhd - before.hblkhd, "heap_free_after": freed.fordblks}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator (mallinfo2, mallopt)")
@pytest.mark.parametrize("mode", ["default", "keep"])
def test_a_freed_block_stays_in_the_heap_only_when_kept(mode):
    run = subprocess.run([sys.executable, "-c", HOLD_AND_FREE, mode], capture_output=True, text=True, check=True,
                         timeout=60)
    report = json.loads(run.stdout)
    if mode == "keep":
        assert report["kept"] is True
        # served from the heap, and still there after free: the next batch reuses it without page faults
        assert report["mmapped_for_it"] == 0 and report["heap_free_after"] >= 20 * MB, report
    else:
        # glibc's default: a fresh mapping, unmapped on free (the next batch faults it in again)
        assert report["mmapped_for_it"] >= 20 * MB and report["heap_free_after"] < 20 * MB, report
