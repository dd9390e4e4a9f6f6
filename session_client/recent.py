"""A bounded set of recently seen ids, to drop repeated events in constant memory.

Delivery is at least once: after a worker restart, events of the batch in flight arrive again,
with the same eventId and bytes. Repeats follow their original closely (at most the two worker
batches in flight, `SW_BATCH_MAX_RECORDS` = 1,000 records each), so remembering the last ids seen
is enough; the oldest is forgotten first.
"""

from collections import OrderedDict

# 10 batches of 1,000: generous for the repeat window above. An entry costs about 200 bytes (a
# 36-character UUID string and its ordered-dict slot), so the default bound is about 2 MB.
DEFAULT_MAX_IDS = 10_000


class RecentIds:
    """The last `max_ids` distinct ids added, in least-recently-seen order."""

    def __init__(self, max_ids: int = DEFAULT_MAX_IDS) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be at least 1")
        self.max_ids = max_ids
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> bool:
        """True if `item` is new (it is now remembered); False for a repeat (it becomes the
        most recently seen again, so a burst of repeats does not evict it)."""
        if item in self._ids:
            self._ids.move_to_end(item)
            return False
        self._ids[item] = None
        if len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)
