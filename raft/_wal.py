"""On-disk format of the write-ahead log and of snapshot files (private).

Every file is a sequence of *records*. A record is a 16-byte header and a payload::

    offset size  field
    0      2     magic        0xC752 ("Rc"), to find record starts when scanning
    2      1     kind         BATCH, RESET or SNAPSHOT
    3      1     version      FORMAT_VERSION
    4      4     length       payload length in bytes
    8      4     payload_crc  zlib.crc32 of the payload
    12     4     header_crc   zlib.crc32 of bytes 0..11

All integers are little-endian. The header has its own CRC so that a damaged `length`
is detected *before* it is trusted: a record whose header is valid but whose payload
runs past the end of the file was certainly cut short by a crash, never misread.

Segments are preallocated: a file may go on with zeros after its last record. Zeros
can never start a record (the magic is not zero), so the first all-zero byte at a
record boundary with nothing but zeros after it is the end of the log, not damage.

One `DiskStorage.save` call writes exactly one BATCH record (plus, at the start of a
new segment, one BATCH carrying only the hard state). A crash can therefore only
damage the last record of the last segment, which is what recovery relies on to tell
a torn tail (cut it off) from corruption (refuse to start).

BATCH payload::

    B  flags        bit 0: a hard state follows
    Q  hs_term, Q hs_vote, Q hs_commit
    Q  first_index  index of the first entry (meaningless when count == 0)
    I  count        number of entries
    H  run_count    number of term runs
    run_count x (I offset-in-batch, Q term)   the term changes inside the batch
    count x B       entry types
    count x I       data lengths
    ...             entry data, concatenated

Term runs let recovery learn every entry's term without touching each entry, so
opening a large log costs one CRC pass over the bytes and a few Python operations per
record, not per entry.

RESET payload: Q index, Q term. The log was replaced by a snapshot at that point.

SNAPSHOT payload (one record filling a whole `snap-*.snap` file)::

    Q index, Q term, I voter_count, I learner_count,
    voter_count x Q, learner_count x Q, then the application data.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from itertools import accumulate
from typing import Sequence

from .errors import CorruptionError
from .types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata

MAGIC = 0xC752
FORMAT_VERSION = 1

KIND_BATCH = 1
KIND_RESET = 2
KIND_SNAPSHOT = 3
KINDS = frozenset({KIND_BATCH, KIND_RESET, KIND_SNAPSHOT})

HEADER = struct.Struct("<HBBIII")
HEADER_SIZE = HEADER.size  # 16
_HEADER_PREFIX = struct.Struct("<HBBII")
_MAGIC_BYTES = struct.pack("<H", MAGIC)
MAX_PAYLOAD = (1 << 32) - 1

BATCH_HEAD = struct.Struct("<BQQQQIH")
_RUN = struct.Struct("<IQ")
_RESET = struct.Struct("<QQ")
_SNAP_HEAD = struct.Struct("<QQII")

_FLAG_HARD_STATE = 1
_NO_HARD_STATE = HardState(0, 0, 0)  # what a batch without a hard state carries
# BATCH_HEAD, the single term run, the entry type and the data length of a batch of
# exactly one entry.
_HEAD_ONE_ENTRY = struct.Struct("<BQQQQIHIQBI")
_ENTRY_TYPES = tuple(EntryType)
_crc32 = zlib.crc32
_LITTLE = sys.byteorder == "little"


_PACK_HEADER_PREFIX = _HEADER_PREFIX.pack
_PACK_HEADER_CRC = struct.Struct("<I").pack


def frame(kind: int, payload: bytes) -> bytes:
    """Wrap `payload` into a record of `kind`."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"record payload of {len(payload)} bytes exceeds 4 GiB")
    prefix = _PACK_HEADER_PREFIX(MAGIC, kind, FORMAT_VERSION, len(payload), _crc32(payload))
    return b"".join((prefix, _PACK_HEADER_CRC(_crc32(prefix)), payload))


# -- BATCH ----------------------------------------------------------------------------


def encode_batch(hard_state: HardState | None, entries: Sequence[Entry]) -> tuple[bytes, list[tuple[int, int]]]:
    """Encode one BATCH record.

    Args:
        hard_state: the hard state to record, or None.
        entries: consecutive entries (may be empty).

    Returns:
        The framed record and the term runs as (first index, term) pairs.

    Raises:
        ValueError: the entries are not consecutive.
    """
    count = len(entries)
    # The usual saves of a running cluster, a hard state alone or one entry, are
    # written with a single pack.
    flags, hs = (0, _NO_HARD_STATE) if hard_state is None else (_FLAG_HARD_STATE, hard_state)
    if count == 0:
        return frame(KIND_BATCH, BATCH_HEAD.pack(flags, hs.term, hs.vote, hs.commit, 0, 0, 0)), []
    if count == 1 and type(entries[0].type) is EntryType:
        entry = entries[0]
        head = _HEAD_ONE_ENTRY.pack(
            flags, hs.term, hs.vote, hs.commit,
            entry.index, 1, 1, 0, entry.term, entry.type, len(entry.data),
        )  # fmt: skip
        return frame(KIND_BATCH, head + entry.data), [(entry.index, entry.term)]
    runs: list[tuple[int, int]] = []
    first = entries[0].index
    # List comprehensions and C-level comparisons: this is the hot path of large saves.
    indexes = [entry.index for entry in entries]
    if indexes != list(range(first, first + count)):
        bad = next(i for i, index in enumerate(indexes) if index != first + i)
        raise ValueError(f"entries not consecutive: expected index {first + bad}, got {indexes[bad]}")
    terms = [entry.term for entry in entries]
    if terms.count(terms[0]) == count:  # the usual case: one term for the batch
        runs.append((first, terms[0]))
    else:
        last_term = -1
        for i, term in enumerate(terms):
            if term != last_term:
                last_term = term
                runs.append((first + i, term))
    types = bytes([entry.type for entry in entries])
    lengths = array("I", [len(entry.data) for entry in entries])
    if not _LITTLE:
        lengths.byteswap()
    data = b"".join([entry.data for entry in entries])
    head = BATCH_HEAD.pack(flags, hs.term, hs.vote, hs.commit, first, count, len(runs))
    parts = [head]
    parts.extend(_RUN.pack(index - first, term) for index, term in runs)
    parts.append(types)
    parts.append(lengths.tobytes())
    parts.append(data)
    return frame(KIND_BATCH, b"".join(parts)), runs


_HEAD_AND_RUN = struct.Struct("<BQQQQIHIQ")


def batch_summary(payload: bytes | memoryview) -> tuple[tuple[int, int, int] | None, int, int, list[tuple[int, int]]]:
    """The cheap part of a BATCH payload, for recovery: (hard state as a (term, vote,
    commit) tuple or None, first index, count, term runs as (first index, term)).

    Recovery calls this once per record of the whole log, so it builds no objects it
    does not need and has a fast path for the usual single-term batch.

    Raises:
        ValueError: the payload is inconsistent.
    """
    size = len(payload)
    if size >= _HEAD_AND_RUN.size:
        flags, term, vote, commit, first, count, run_count, offset, run_term = _HEAD_AND_RUN.unpack_from(payload, 0)
        if run_count == 1 and offset == 0 and count and first >= 1 and size >= _HEAD_AND_RUN.size + 5 * count:
            return ((term, vote, commit) if flags & _FLAG_HARD_STATE else None), first, count, [(first, run_term)]
    head = decode_batch_head(payload)
    hs = head.hard_state
    return (None if hs is None else (hs.term, hs.vote, hs.commit)), head.first_index, head.count, head.runs


class BatchHead:
    """The decoded fixed part of a BATCH payload."""

    __slots__ = ("hard_state", "first_index", "count", "runs", "body")

    def __init__(
        self, hard_state: HardState | None, first_index: int, count: int, runs: list[tuple[int, int]], body: int
    ) -> None:
        self.hard_state = hard_state
        self.first_index = first_index
        self.count = count
        self.runs = runs
        self.body = body  # payload offset where the entry types start


def decode_batch_head(payload: bytes | memoryview) -> BatchHead:
    """Decode a BATCH payload's hard state, first index, count and term runs.

    Raises:
        ValueError: the payload is inconsistent (its CRC matched, so this means a
            bug or a foreign file, and the caller reports corruption).
    """
    if len(payload) < BATCH_HEAD.size:
        raise ValueError("batch payload too short")
    flags, term, vote, commit, first, count, run_count = BATCH_HEAD.unpack_from(payload, 0)
    hard_state = HardState(term=term, vote=vote, commit=commit) if flags & _FLAG_HARD_STATE else None
    pos = BATCH_HEAD.size
    runs = []
    for _ in range(run_count):
        offset, run_term = _RUN.unpack_from(payload, pos)
        runs.append((first + offset, run_term))
        pos += _RUN.size
    if len(payload) < pos + 5 * count or (count and (not runs or runs[0][0] != first)):
        raise ValueError("batch payload inconsistent")
    if count and first < 1:
        raise ValueError("batch first index must be >= 1")
    return BatchHead(hard_state, first, count, runs, pos)


def decode_batch_entries(payload: bytes, head: BatchHead, lo: int, hi: int) -> list[Entry]:
    """Decode the entries with index in [lo, hi) of a BATCH payload."""
    first, count = head.first_index, head.count
    start = max(lo, first) - first
    stop = min(hi, first + count) - first
    if start >= stop:
        return []
    pos = head.body
    types = payload[pos : pos + count]
    pos += count
    lengths = array("I")
    lengths.frombytes(payload[pos : pos + 4 * count])
    if not _LITTLE:
        lengths.byteswap()
    pos += 4 * count
    ends = list(accumulate(lengths, initial=pos))
    if ends[-1] != len(payload):
        raise ValueError("batch data length mismatch")
    run_starts = [index for index, _ in head.runs]
    run_terms = [term for _, term in head.runs]
    run = 0
    while run + 1 < len(run_starts) and run_starts[run + 1] <= first + start:
        run += 1
    result = []
    entry_types = _ENTRY_TYPES
    for i in range(start, stop):
        index = first + i
        while run + 1 < len(run_starts) and run_starts[run + 1] <= index:
            run += 1
        kind = types[i]
        if kind >= len(entry_types):
            raise ValueError(f"unknown entry type {kind}")
        result.append(Entry(run_terms[run], index, entry_types[kind], payload[ends[i] : ends[i + 1]]))
    return result


# -- RESET ----------------------------------------------------------------------------


def encode_reset(index: int, term: int) -> bytes:
    return frame(KIND_RESET, _RESET.pack(index, term))


def decode_reset(payload: bytes | memoryview) -> tuple[int, int]:
    if len(payload) != _RESET.size:
        raise ValueError("reset payload has the wrong size")
    index, term = _RESET.unpack_from(payload, 0)
    return index, term


# -- SNAPSHOT -------------------------------------------------------------------------


def encode_snapshot(snapshot: Snapshot) -> bytes:
    conf = snapshot.metadata.conf_state
    voters, learners = sorted(conf.voters), sorted(conf.learners)
    head = _SNAP_HEAD.pack(snapshot.index, snapshot.term, len(voters), len(learners))
    ids = struct.pack(f"<{len(voters) + len(learners)}Q", *voters, *learners)
    return frame(KIND_SNAPSHOT, head + ids + snapshot.data)


def decode_snapshot_file(data: bytes) -> Snapshot:
    """Decode a whole snapshot file.

    Raises:
        ValueError: the file is incomplete or damaged.
    """
    kind, payload, end = read_one(data, 0)
    if kind != KIND_SNAPSHOT or end != len(data):
        raise ValueError("not a single snapshot record")
    index, term, n_voters, n_learners = _SNAP_HEAD.unpack_from(payload, 0)
    pos = _SNAP_HEAD.size
    n_ids = n_voters + n_learners
    if len(payload) < pos + 8 * n_ids:
        raise ValueError("snapshot payload too short")
    ids = struct.unpack_from(f"<{n_ids}Q", payload, pos)
    pos += 8 * n_ids
    conf = ConfState(voters=frozenset(ids[:n_voters]), learners=frozenset(ids[n_voters:]))
    return Snapshot(SnapshotMetadata(index=index, term=term, conf_state=conf), bytes(payload[pos:]))


def snapshot_name(index: int, term: int) -> str:
    return f"snap-{index:020d}-{term:020d}.snap"


def parse_snapshot_name(name: str) -> tuple[int, int] | None:
    if not (name.startswith("snap-") and name.endswith(".snap")):
        return None
    parts = name[5:-5].split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def segment_name(seq: int) -> str:
    return f"wal-{seq:016d}.seg"


def parse_segment_name(name: str) -> int | None:
    if not (name.startswith("wal-") and name.endswith(".seg")):
        return None
    digits = name[4:-4]
    return int(digits) if digits.isdigit() else None


# -- scanning -------------------------------------------------------------------------


def _header_ok(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(kind, length, payload_crc) if a well-formed header starts at `offset`."""
    if len(data) - offset < HEADER_SIZE:
        return None
    magic, kind, version, length, payload_crc, header_crc = HEADER.unpack_from(data, offset)
    if magic != MAGIC or _crc32(memoryview(data)[offset : offset + 12]) != header_crc:
        return None
    if version != FORMAT_VERSION or kind not in KINDS:
        return None
    return kind, length, payload_crc


def read_one(data: bytes, offset: int) -> tuple[int, memoryview, int]:
    """Read the record at `offset`: (kind, payload view, end offset).

    Raises:
        ValueError: no complete, valid record there.
    """
    header = _header_ok(data, offset)
    if header is None:
        raise ValueError("bad or incomplete record header")
    kind, length, payload_crc = header
    start = offset + HEADER_SIZE
    end = start + length
    if end > len(data):
        raise ValueError("record runs past the end of the file")
    payload = memoryview(data)[start:end]
    if _crc32(payload) != payload_crc:
        raise ValueError("record payload CRC mismatch")
    return kind, payload, end


def _valid_record_from(data: bytes, start: int) -> int:
    """Offset of the first complete valid record at or after `start`, or -1."""
    pos = data.find(_MAGIC_BYTES, start)
    while pos >= 0:
        try:
            read_one(data, pos)
            return pos
        except ValueError:
            pos = data.find(_MAGIC_BYTES, pos + 1)
    return -1


class ScannedSegment:
    """The valid records of one segment and what, if anything, follows them.

    Attributes:
        records: (offset, kind, payload view, end) of each valid record, in order.
        valid_end: the offset just past the last valid record.
        tail_error: why the bytes after `valid_end` were rejected (None when the
            segment ends at `valid_end` or only zeros follow it).
    """

    __slots__ = ("records", "valid_end", "tail_error")

    def __init__(self, records: list[tuple[int, int, memoryview, int]], valid_end: int, tail_error: str | None):
        self.records = records
        self.valid_end = valid_end
        self.tail_error = tail_error


def scan_segment(data: bytes, path: str, is_last: bool) -> ScannedSegment:
    """Parse a segment, separating a torn tail from real corruption.

    A damaged record is a *torn tail* when it is in the last segment and no valid
    record follows it anywhere: that is all a crash during the last (unacknowledged)
    write can leave. Anything else is corruption of data that was once written whole.
    Zeros to the end of the file after a record are preallocated space, neither.

    Raises:
        CorruptionError: a damaged record with valid data after it, or any damage in a
            segment that is not the last.
    """
    records = []
    offset = 0
    size = len(data)
    view = memoryview(data)
    unpack = HEADER.unpack_from
    while offset < size:
        # Fast path inline: the common case is a sound record.
        if size - offset >= HEADER_SIZE:
            magic, kind, version, length, payload_crc, header_crc = unpack(data, offset)
            end = offset + HEADER_SIZE + length
            if (
                magic == MAGIC
                and version == FORMAT_VERSION
                and kind in KINDS
                and end <= size
                and _crc32(view[offset : offset + 12]) == header_crc
            ):
                payload = view[offset + HEADER_SIZE : end]
                if _crc32(payload) == payload_crc:
                    records.append((offset, kind, payload, end))
                    offset = end
                    continue
        if data.count(0, offset) == size - offset:
            break  # the preallocated zeros after the last record
        reason = _classify_bad_record(data, offset)
        if not is_last:
            raise CorruptionError(
                f"corrupt record in {path} at byte offset {offset}: {reason} (not the last segment)",
                path=path,
                offset=offset,
            )
        header = _header_ok(data, offset)
        # With a trusted header, the next record would start right after this one.
        resume = offset + HEADER_SIZE + header[1] if header is not None else offset + 1
        later = _valid_record_from(data, resume) if resume < size else -1
        if later >= 0:
            raise CorruptionError(
                f"corrupt record in {path} at byte offset {offset}: {reason}; "
                f"a valid record follows at offset {later}",
                path=path,
                offset=offset,
            )
        return ScannedSegment(records, offset, reason)
    return ScannedSegment(records, offset, None)


def _classify_bad_record(data: bytes, offset: int) -> str:
    if len(data) - offset < HEADER_SIZE:
        return f"incomplete header ({len(data) - offset} bytes)"
    header = _header_ok(data, offset)
    if header is None:
        return "bad record header"
    if offset + HEADER_SIZE + header[1] > len(data):
        return "record runs past the end of the file"
    return "payload CRC mismatch"
