"""Garbage-collector settings for a process that runs the worker (`session-worker run`).

With CPython's defaults (a young collection every 700 net allocations of container objects) a
batch's short-lived objects (records, decoded commands, outcomes) outlive several young
collections while the batch is in flight, land in the oldest generation, and make full
collections frequent: measured in A/B runs on a 2-core machine at 1,100-2,200 commands/s, one
full collection every ~2.5 s, each stopping the event loop for 28-45 ms, every command in flight
waiting. Collecting young objects every 50,000 instead lets a batch's objects die before any
collection sees them (no full collection in the same runs), and freezing what start-up loaded
(modules, classes, clients) keeps it out of every later scan. Reference counting still frees
everything that is not in a cycle at once; cycles are collected, less often. Library use of the
worker (tests, embedding `Worker`) leaves the host process' collector alone.
"""

import gc

YOUNG_THRESHOLD = 50_000  # CPython's default: 700
OLDER_THRESHOLDS = (20, 10)  # young collections per middle one, middle ones per full one


def tune_for_worker() -> None:
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
