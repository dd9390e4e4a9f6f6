"""How a `Session` snapshot is stored in Redis: compressed, behind a format byte.

A snapshot is compressed once per put and the same bytes go to the live record and to the
archived copy kept for the expiry announcement; decisions, events and `session-worker get` see
the JSON again. zstd (the `zstandard` package, level 1) with a dictionary trained on snapshots
(`snapshot_dictionary.zstd`, made by `devenv.snapshot_training`) shrinks a typical 1.3 KB
snapshot to ~380 B in ~3.4 µs. The dictionary before it held only the snapshot's structure as
text (`archive_dictionary.json`): ~410 B in ~6.1 µs, as zstd built the entropy tables of every
frame anew; zlib with that one gave ~390 B but took ~43 µs.

Formats, by the first byte (a JSON snapshot starts with `{`, so plain values stay readable):
- `\\x03`: a zstd frame with the trained dictionary (what this worker writes);
- `\\x02`: a zstd frame with the structure dictionary (written by the previous release);
- `\\x01`: raw deflate with the structure dictionary: archived copies written by 0.1 workers;
- anything else: the JSON itself (0.1 workers' live records).
zstd frames have their content size set, and no dictionary id or checksum: Redis keeps the
bytes intact and the format byte names the dictionary. A dictionary never changes once
released (a test pins each file's digest); a better one gets a format byte of its own.
"""

import functools
import zlib
from importlib.resources import files

import zstandard

ZSTD_FORMAT = b"\x03"
STRUCTURE_ZSTD_FORMAT = b"\x02"
DEFLATE_FORMAT = b"\x01"
# Level 1: the same size as level 3 on snapshots this small, and ~20% faster.
ZSTD_LEVEL = 1
# A snapshot decompressing to more than this is not one the worker wrote.
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024

_STRUCTURE_DICTIONARY = (files("worker") / "archive_dictionary.json").read_bytes()
_TRAINED_DICTIONARY = (files("worker") / "snapshot_dictionary.zstd").read_bytes()


def _zstd(data: bytes, dict_type: int) -> zstandard.ZstdCompressionDict:
    dictionary = zstandard.ZstdCompressionDict(data, dict_type=dict_type)
    dictionary.precompute_compress(level=ZSTD_LEVEL)
    return dictionary


def _compressor_with(dictionary: zstandard.ZstdCompressionDict) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(
        level=ZSTD_LEVEL,
        dict_data=dictionary,
        write_content_size=True,
        write_checksum=False,
        write_dict_id=False,
    )


_trained = _zstd(_TRAINED_DICTIONARY, zstandard.DICT_TYPE_FULLDICT)
_compressor = _compressor_with(_trained)
_decompressors = {
    ZSTD_FORMAT: zstandard.ZstdDecompressor(dict_data=_trained),
    STRUCTURE_ZSTD_FORMAT: zstandard.ZstdDecompressor(
        dict_data=zstandard.ZstdCompressionDict(
            _STRUCTURE_DICTIONARY, dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
    ),
}


@functools.cache
def _structure_compressor() -> zstandard.ZstdCompressor:
    # Built on first use: only tests and the benchmark write the previous release's format.
    return _compressor_with(_zstd(_STRUCTURE_DICTIONARY, zstandard.DICT_TYPE_RAWCONTENT))


_inflate = zlib.decompressobj(-15, _STRUCTURE_DICTIONARY)


class SnapshotFormatError(ValueError):
    """A stored value that is no snapshot format this worker knows."""


def pack_snapshot(snapshot: bytes) -> bytes:
    """The stored form of a JSON snapshot."""
    return ZSTD_FORMAT + _compressor.compress(snapshot)


def pack_snapshot_as_previous_release(snapshot: bytes) -> bytes:
    """What the release before this one stored (format `\\x02`), for the tests that show it
    is still read and for the benchmark's comparison of layouts; the worker never writes it."""
    return STRUCTURE_ZSTD_FORMAT + _structure_compressor().compress(snapshot)


def unpack_snapshot(stored: bytes) -> bytes:
    """The JSON snapshot of a stored value, whichever worker version wrote it."""
    head = stored[:1]
    try:
        decompressor = _decompressors.get(head)
        if decompressor is not None:
            return decompressor.decompress(stored[1:], max_output_size=MAX_SNAPSHOT_BYTES)
        if head == DEFLATE_FORMAT:
            inflate = _inflate.copy()  # primed with the dictionary once
            return inflate.decompress(stored[1:]) + inflate.flush()
    except (zstandard.ZstdError, zlib.error) as exc:
        raise SnapshotFormatError(f"stored snapshot does not decompress: {exc}") from exc
    return stored
