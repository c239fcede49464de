"""A server's start-up heap is frozen: full collections walk only what came after."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from chroma_operator.router.app import create_app
from chroma_operator.heap import freeze_startup_heap
before = len(gc.get_objects())
frozen = freeze_startup_heap()
after = len(gc.get_objects())
garbage = []
garbage.append(garbage)  # a cycle made after the freeze is still collected
del garbage
print(json.dumps({"before": before, "frozen": frozen, "after": after,
                  "collected": gc.collect()}))
"""


def test_freezing_takes_the_startup_heap_out_of_the_collectors_passes() -> None:
    # A process of its own: freezing the test runner's heap would keep its garbage.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    seen = json.loads(out)
    assert seen["frozen"] > 20_000  # the router's imports alone
    assert seen["after"] < seen["before"] / 5
    assert seen["collected"] >= 1
