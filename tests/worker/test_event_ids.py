"""Event ids: UUIDv5 of what caused the event, byte for byte what the uuid module computes."""

import random
import uuid

from worker.eventing import _EVENT_NAMESPACE, _uuid5, command_event_id, expiry_event_id


def test_ids_are_the_uuid_modules_uuid5_of_the_same_name() -> None:
    rng = random.Random(11)
    names = [
        "",
        "cmd\x1fs-1\x1fc-1",
        "exp\x1f東京 ☎ é\x1f7",
        *(rng.randbytes(40).hex() for _ in range(2000)),
    ]
    for name in names:
        assert _uuid5(name) == str(uuid.uuid5(_EVENT_NAMESPACE, name)), name


def test_the_same_cause_gives_the_same_id_and_different_causes_differ() -> None:
    assert command_event_id("s-1", "c-1") == command_event_id("s-1", "c-1")
    assert command_event_id("s-1", "c-1") != command_event_id("s-1", "c-2")
    assert expiry_event_id("s-1", 3) != expiry_event_id("s-1", 4)
    parsed = uuid.UUID(command_event_id("s-1", "c-1"))
    assert (parsed.version, parsed.variant) == (5, uuid.RFC_4122)
