"""The session record `r:<id>` as Python reads it (for `session-worker get` and checks).

The worker itself never parses it: the scripts do (`lua/record.lua` defines the layout and is
the one writer). One STRING, so a live session costs one key less than a meta HASH plus a copy:

    version \\x1f owner \\x1f status \\x1f expires_ms \\x1f commandIds (space-separated)
        [\\x1f traceparent] \\x1e copy
"""

from dataclasses import dataclass

from worker.snapshot_codec import unpack_snapshot

# The Redis record format this worker writes: the key layout and the snapshot encoding together,
# numbered in the order releases introduced them (CHANGELOG.md has each release's). Every
# release reads all the formats before its own; no release reads a later one, so a change here
# means no rolling upgrade and no rollback once written. Shown by `session-worker --version`
# and `session_worker_build_info{record_format}`.
#   1  0.1.0  plain JSON live record `s:<id>`; meta HASH `m:<id>`; copy in `a:<id>` (`\x01`)
#   2  0.2.0  live record and `a:<id>` copy zstd with the structure dictionary (`\x02`)
#   3  0.3.0  one record `r:<id>` (this layout) instead of `m:` and `a:`; snapshots `\x02`
#   4  0.4.0  the same record; snapshots zstd with the trained dictionary (`\x03`)
#   5  0.6.0  the same, with an optional sixth field: the traceparent an expiry links to (only
#             written with tracing on; 0.5.0's scripts ignore it, its `get` refuses the record)
RECORD_FORMAT = "5"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    version: int
    org_id: str  # "" when never known
    status: str  # active | completed | deleted | expired
    expires_ms: int | None  # None once deleted or expired
    command_ids: tuple[str, ...]  # commands applied to this session id
    copy: bytes | None  # the snapshot as stored (compressed) while an expiry may be due
    trace: str | None = None  # traceparent of the command that last set the TTL (format 5)

    def snapshot(self) -> bytes | None:
        """The copy as JSON."""
        return unpack_snapshot(self.copy) if self.copy else None


def parse_record(raw: bytes) -> SessionRecord:
    head, sep, copy = raw.partition(b"\x1e")
    fields = head.decode().split("\x1f")
    if not sep or len(fields) not in (5, 6):
        raise ValueError(f"not a session record: {raw[:40]!r}")
    version, org_id, status, expires, marks = fields[:5]
    return SessionRecord(
        version=int(version),
        org_id=org_id,
        status=status,
        expires_ms=int(expires) if expires else None,
        command_ids=tuple(marks.split(" ")) if marks else (),
        copy=copy or None,
        trace=fields[5] if len(fields) == 6 else None,
    )
