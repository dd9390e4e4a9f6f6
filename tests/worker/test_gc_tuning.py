"""`session-worker run` tunes the collector of its own process only (see worker/gc_tuning.py)."""

import gc
import subprocess
import sys

from worker.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    probe = (
        "import gc; from worker.gc_tuning import tune_for_worker; tune_for_worker(); "
        "print(gc.get_freeze_count(), *gc.get_threshold())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    frozen, *thresholds = map(int, out)
    assert frozen > 1_000  # what start-up loaded (here: the interpreter and this module)
    assert tuple(thresholds) == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    assert gc.get_threshold()[0] != YOUNG_THRESHOLD  # this (test) process is left alone
