"""The CLI's malloc tuning: applied on glibc, skipped on request, memory kept in the process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

# allocate, touch and free tensors of the sizes of a CPU training step's activations, then
# print what tune_malloc said and the minor page faults of the loop
PROBE = """
import ctypes, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: count 4 KiB pages everywhere
import torch
from coldflow.training.allocator import tune_malloc
said = tune_malloc() if sys.argv[1] == "tune" else None
sizes = [(k % 7 + 1) * 2**20 for k in range(30)]  # 4..28 MiB of float32


def step():
    kept = [torch.ones(n) for n in sizes[:10]]  # what a forward pass keeps for backward
    for n in sizes:
        torch.ones(n).sum()  # temporaries
    del kept


for _ in range(8):  # the heap grows to its working size (fragmentation: a few steps)
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(said)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "COLDFLOW_M"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True,
        text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return out[0], int(out[1])


def test_tuning_is_applied_and_keeps_freed_memory_in_the_process():
    # pages the measured loop touches: 4 steps of 10 kept and 30 temporary tensors
    pages = 4 * sum((k % 7 + 1) * 2**20 * 4 for k in [*range(10), *range(30)]) // 4096
    said, tuned = _probe("tune")
    assert said.startswith("malloc: mmap threshold 32 MiB")
    assert tuned < 0.05 * pages, (tuned, pages)
    # the probe does see faults: with every large block mmapped afresh (glibc's starting
    # threshold, held fixed; its default moves the threshold with the process's history)
    # most pages fault again
    _, fresh = _probe("default", MALLOC_MMAP_THRESHOLD_="131072")
    assert fresh > 0.2 * pages, (fresh, pages)


@pytest.mark.parametrize(
    "env", [{"COLDFLOW_MALLOC": "default"}, {"MALLOC_MMAP_THRESHOLD_": "65536"}]
)
def test_the_users_choice_wins(env):
    said, _ = _probe("tune", **env)
    assert said == "None"
