"""Where an HDF5 file keeps a dataset's bytes, read from the file's own structures (no h5py call touches them).

h5py (HDF5) reads a file's metadata one structure at a time: an object header, then the B-tree that indexes the
dataset's chunks, then the chunk; each waits for the one before. Read in place from S3, each of those reads is a
round trip. This module finds the byte ranges ahead of h5py, so that a remote file can fetch a whole batch of them
concurrently (:meth:`oco_l3.remote.RemoteFile.fetch`) before h5py asks for them one by one:

1. object header addresses come from the group's Link messages (IV.A.2.g) when its links are compact (in its header),
   else from h5py (``links.get_info``, from the dense link storage fetched ahead of it);
2. each object header (IV.A.1) is parsed chunk by chunk: every continuation block known is fetched in the same round,
   and what a chunk holds is followed as soon as it is read, beside the rest of the chain: a data layout message
   (IV.A.2.i: contiguous (address, size), a single chunk, or a version-1 B-tree of chunks), Link messages (the
   members), Link Info and Attribute Info messages (dense storage: fractal heap III.G and version-2 B-tree III.A.2);
3. version-1 B-tree nodes (III.A.1, node type 1) give each chunk's address and stored size;
4. variable-length strings are 16-byte references (length, global heap collection address, object index) whose
   collections (III.E, ``GCOL``) are fetched for the rows a reader wants.

Only what these readers meet is parsed (superblock versions 0-3, object header versions 1 and 2, layout versions 3
and 4 with contiguous, compact, single-chunk and version-1 B-tree storage). Anything else -- an unknown message,
another chunk index, a file with a user block -- is skipped: nothing is prefetched for it and h5py reads it as
usual, so a parse that gives up costs round trips, never correctness (the bytes h5py gets always come from the
object itself).

A *reader* is ``read(start, stop) -> bytes`` of the file (a remote file answers from what it already holds and
fetches the rest).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import h5py
import numpy as np

Reader = Callable[[int, int], bytes]
Range = tuple[int, int]

SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Bytes fetched at an object header's address before its size is known (a netCDF-4 variable's header with its
#: attributes is 300-700 bytes; a longer one is completed on demand).
HEADER_GUESS = 1024
#: Largest object header chunk or continuation block the plan fetches (a larger size is a damaged header, or one
#: h5py reads on its own: the plan gives up on it).
HEADER_BLOCK_MAX = 1024 * 1024
#: Most blocks (first chunk and continuation blocks) an object header is followed through.
CHAIN_MAX = 32
#: Smallest global heap collection (HDF5's ``H5HG_MINSIZE``); collections grow only for objects larger than this.
COLLECTION_MIN = 4096
#: Version-1 B-tree "K" for chunked datasets when the superblock does not say (HDF5's default).
CHUNK_BTREE_K = 32

#: Object header message types (HDF5 File Format Specification 3.0, IV.A.2): Link Info (IV.A.2.c), Link (IV.A.2.g),
#: Data Layout (IV.A.2.i), Object Header Continuation (IV.A.2.q), Symbol Table (IV.A.2.r), Attribute Info (IV.A.2.v).
LINK_INFO, LINK, _LAYOUT, _CONTINUATION, SYMBOL_TABLE, ATTRIBUTE_INFO = 0x0002, 0x0006, 0x0008, 0x0010, 0x0011, 0x0015
UNDEFINED = (1 << 64) - 1


@dataclass(frozen=True)
class Widths:
    """The superblock's size of offsets and size of lengths (bytes), the chunk B-tree "K" and the root group's
    object header address."""

    offset: int
    length: int
    chunk_btree_k: int = CHUNK_BTREE_K
    root: int | None = None


@dataclass(frozen=True)
class RawData:
    """A dataset's raw data: ``contiguous``/``single`` (one range), ``chunked`` (a version-1 B-tree at ``address``
    whose keys have ``ndims`` offsets), or ``compact`` (inside the header: nothing to fetch)."""

    kind: str
    address: int = 0
    size: int = 0
    ndims: int = 0


@dataclass(frozen=True)
class Chunk:
    """One stored chunk: where it is, its stored (filtered) size, and its element offset in the first dimension."""

    address: int
    size: int
    row: int


def widths(head: bytes) -> Widths | None:
    """The offset/length sizes of a file whose superblock starts at byte 0 (``None`` otherwise)."""
    if len(head) < 16 or not head.startswith(SIGNATURE):
        return None
    version = head[8]
    if version in (0, 1):
        offset, length = head[13], head[14]
        k = struct.unpack_from("<H", head, 24)[0] if version == 1 and len(head) >= 26 else CHUNK_BTREE_K
        root_at = (28 if version == 1 else 24) + 5 * offset  # four addresses, then the root's symbol table entry
    elif version in (2, 3):
        offset, length, k = head[9], head[10], CHUNK_BTREE_K
        root_at = 12 + 3 * offset
    else:
        return None
    if offset not in (4, 8) or length not in (4, 8):
        return None
    root = _uint(head, root_at, offset) if len(head) >= root_at + offset else None
    return Widths(offset, length, k or CHUNK_BTREE_K, root)


def _uint(data: bytes, pos: int, size: int) -> int:
    return int.from_bytes(data[pos:pos + size], "little")


def header_messages(read: Reader, address: int, w: Widths) -> list[tuple[int, bytes]] | None:
    """The messages ``(type, body)`` of the object header at ``address`` (versions 1 and 2, continuation blocks
    followed), or ``None`` when it is not a header this module knows, or a damaged one: a block over
    :data:`HEADER_BLOCK_MAX` bytes, or a chain of more than :data:`CHAIN_MAX` blocks (a cycle must not loop)."""
    start = header_start(read(address, address + HEADER_GUESS), address)
    if start is None:
        return None
    out: list[tuple[int, bytes]] = []
    blocks = [(start.first, start.first, b"")]
    for _ in range(CHAIN_MAX):
        if not blocks:
            return out
        fetch, inside, signature = blocks.pop(0)
        if fetch[1] - fetch[0] > HEADER_BLOCK_MAX or not read(*fetch).startswith(signature):
            return None
        for kind, body in block_messages(read(*inside), start):
            out.append((kind, body))
            if kind == _CONTINUATION and len(body) >= w.offset + w.length:
                blocks.append(continuation_block(body, w, start))
    return None


def _v2_walk(data: bytes, pos: int, stop: int, ordered: bool) -> Iterable[tuple[int, bytes]]:
    prefix = 6 if ordered else 4
    while pos + prefix <= stop:
        kind, size = data[pos], struct.unpack_from("<H", data, pos + 1)[0]
        pos += prefix
        yield kind, data[pos:pos + size]
        pos += size


@dataclass(frozen=True)
class HeaderStart:
    """What an object header's prefix says: its ``version`` (1 or 2), ``flags`` (version 2) and the byte range of the
    messages of its first chunk."""

    version: int
    flags: int
    first: Range


def header_start(head: bytes, address: int) -> HeaderStart | None:
    """The prefix of the object header whose first bytes (at ``address``) are ``head``, ``None`` if it is not one.

    Version 2 (IV.A.1.b): ``OHDR``, version, flags, the four times (flags bit 5), the attribute phase change values
    (flags bit 4), then the size of chunk 0 in 1, 2, 4 or 8 bytes (flags bits 0-1); its messages follow. Version 1
    (IV.A.1.a): version, reserved, message count (2), reference count (4), header size (4), padded to 16 bytes."""
    if head[:4] == b"OHDR" and len(head) >= 7:
        flags = head[5]
        pos = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 0x03)
        if len(head) < pos + width:
            return None
        size = _uint(head, pos, width)
        return HeaderStart(2, flags, (address + pos + width, address + pos + width + size))
    if head[:2] == b"\x01\x00" and len(head) >= 16:
        return HeaderStart(1, 0, (address + 16, address + 16 + struct.unpack_from("<I", head, 8)[0]))
    return None


def block_messages(data: bytes, start: HeaderStart) -> list[tuple[int, bytes]]:
    """The messages ``(type, body)`` in ``data``, the message bytes of one chunk of a header (version 2: type (1),
    size (2), flags (1), creation order (2, flags bit 2 of the header); version 1: type (2), size (2), flags (1),
    reserved (3))."""
    if start.version == 2:
        return list(_v2_walk(data, 0, len(data), bool(start.flags & 0x04)))
    out, pos = [], 0
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<HH", data, pos)
        out.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 8 + length
    return out


def continuation_block(body: bytes, w: Widths, start: HeaderStart) -> tuple[Range, Range, bytes]:
    """``(block, messages, signature)`` of the continuation block a Continuation message (IV.A.2.q: offset, length)
    names: the block's and its messages' byte ranges and what the block starts with. A version 2 block is
    ``OCHK``, the messages, a 4-byte checksum (III.H); a version 1 block is messages."""
    at, length = _uint(body, 0, w.offset), _uint(body, w.offset, w.length)
    if start.version == 2:
        return (at, at + length), (at + 4, at + length - 4), b"OCHK"
    return (at, at + length), (at, at + length), b""


def link_target(body: bytes, w: Widths) -> tuple[str, int | None] | None:
    """``(name, object header address)`` of a Link message (IV.A.2.g; the address ``None`` for a soft or external
    link), ``None`` if it is not one this module reads. The body: version 1, flags, then the link type (flags bit 3;
    0 = hard), creation order (8, bit 2), name character set (1, bit 4), the name's length in 1, 2, 4 or 8 bytes
    (bits 0-1), the name, and for a hard link the object's address."""
    if len(body) < 3 or body[0] != 1:
        return None
    flags, pos, kind = body[1], 2, 0
    if flags & 0x08:
        kind, pos = body[pos], pos + 1
    pos += (8 if flags & 0x04 else 0) + (1 if flags & 0x10 else 0)
    width = 1 << (flags & 0x03)
    n = _uint(body, pos, width)
    pos += width
    if len(body) < pos + n:
        return None
    try:
        name = body[pos:pos + n].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if kind != 0:
        return name, None
    return (name, _uint(body, pos + n, w.offset)) if len(body) >= pos + n + w.offset else None


def storage(messages: Sequence[tuple[int, bytes]], w: Widths) -> RawData | None:
    """The data layout of a dataset's header messages (``None``: a layout this module does not parse)."""
    body = next((b for kind, b in messages if kind == _LAYOUT), None)
    if body is None or len(body) < 2:
        return None
    version, kind = body[0], body[1]
    if version not in (3, 4):
        return None
    if kind == 0:
        return RawData("compact")
    if kind == 1:
        return RawData("contiguous", _uint(body, 2, w.offset), _uint(body, 2 + w.offset, w.length))
    if kind != 2:
        return None
    if version == 3:
        ndims = body[2]
        return RawData("chunked", _uint(body, 3, w.offset), 0, ndims)
    return _v4_chunked(body, w)


def _v4_chunked(body: bytes, w: Widths) -> RawData | None:
    flags, ndims, enc = body[2], body[3], body[4]
    pos = 5 + ndims * enc
    dims = [_uint(body, 5 + i * enc, enc) for i in range(ndims)]
    index = body[pos]
    pos += 1
    if index != 1:  # single chunk only; implicit, fixed/extensible arrays and v2 B-trees are left to h5py
        return None
    if flags & 0x02:
        size = _uint(body, pos, w.length)
        pos += w.length + 4
    else:
        size = int(np.prod(dims, dtype=np.int64))
    return RawData("single", _uint(body, pos, w.offset), size)


def dense_storage(messages: Sequence[tuple[int, bytes]], w: Widths, kinds: Iterable[int] = (LINK_INFO, ATTRIBUTE_INFO),
                  ) -> list[tuple[int, list[int]]]:
    """``(fractal heap address, [index B-tree addresses])`` of each dense storage an object header names: its links
    (Link Info message, IV.A.2.c) and its attributes (Attribute Info message, IV.A.2.v). Compact storage (in the
    header itself) and old-style groups name none."""
    out = []
    undefined = (1 << (8 * w.offset)) - 1
    for kind, body in messages:
        if kind not in kinds or len(body) < 2 or body[0] != 0:
            continue
        flags = body[1]
        pos = 2 + ((8 if kind == LINK_INFO else 2) if flags & 0x01 else 0)
        count = 3 if flags & 0x02 else 2  # the heap, the name index, the creation-order index when there is one
        found = [_uint(body, pos + i * w.offset, w.offset) for i in range(count)]
        if found[0] not in (0, undefined):
            out.append((found[0], [a for a in found[1:] if a not in (0, undefined)]))
    return out


#: Bytes of a fractal heap header (III.G, ``FRHP``) and a version-2 B-tree header (III.A.2, ``BTHD``) fetched
#: before their sizes are known (they are about 150 and 40 bytes). A heap's first (root) direct block, 512 bytes by
#: default, is often allocated right after its header, so the heap guess takes it in the same round when it is there
#: (measured in ``bench/inplace.py``: one round less on the 2.0 MB ATL07 granule, none lost elsewhere).
HEAP_HEADER_GUESS, BTREE2_HEADER_GUESS = 1024, 64


@dataclass(frozen=True)
class HeapRoot:
    """Where a fractal heap's objects are: its root block, direct (``rows == 0``) or indirect (``rows`` rows of
    ``width`` blocks, the first row and the second of ``start`` bytes, each later row twice the one before)."""

    address: int
    rows: int
    width: int
    start: int
    max_direct: int
    max_heap_bits: int
    filtered: bool

    def range(self, w: Widths) -> Range:
        """The bytes of the root block (for an indirect block, up to its direct block entries)."""
        if self.rows == 0:
            return self.address, self.address + self.start
        direct = self.direct_rows * self.width * (w.offset + (w.length + 4 if self.filtered else 0))
        indirect = (self.rows - self.direct_rows) * self.width * w.offset
        return self.address, self.address + 5 + w.offset + (self.max_heap_bits + 7) // 8 + direct + indirect + 4

    @property
    def direct_rows(self) -> int:
        return min(self.rows, (self.max_direct // self.start).bit_length() + 1)

    def block_size(self, row: int) -> int:
        return self.start * (1 << max(0, row - 1))


def heap_root(data: bytes, w: Widths) -> HeapRoot | None:
    """The root block of a fractal heap header (``FRHP``; a group's links live in its blocks), ``None`` if the
    bytes are not one."""
    if data[:4] != b"FRHP":
        return None
    filtered = struct.unpack_from("<H", data, 7)[0] > 0
    pos = 14 + 10 * w.length + 2 * w.offset  # fixed fields up to the table width
    width = struct.unpack_from("<H", data, pos)[0]
    start, max_direct = _uint(data, pos + 2, w.length), _uint(data, pos + 2 + w.length, w.length)
    pos += 2 + 2 * w.length
    max_heap_bits = struct.unpack_from("<H", data, pos)[0]
    root = _uint(data, pos + 4, w.offset)
    rows = struct.unpack_from("<H", data, pos + 4 + w.offset)[0]
    if not start or not width:
        return None
    return HeapRoot(root, rows, width, start, max_direct, max_heap_bits, filtered)


def heap_direct_blocks(data: bytes, heap: HeapRoot, w: Widths) -> list[Range]:
    """The direct blocks an indirect root block (``FHIB``) points to (unallocated entries left out)."""
    if data[:4] != b"FHIB":
        return []
    pos = 5 + w.offset + (heap.max_heap_bits + 7) // 8
    undefined = (1 << (8 * w.offset)) - 1
    out = []
    for row in range(heap.direct_rows):
        for _ in range(heap.width):
            at = _uint(data, pos, w.offset)
            pos += w.offset + (w.length + 4 if heap.filtered else 0)
            if at not in (0, undefined):
                out.append((at, at + heap.block_size(row)))
    return out


def btree2_root(data: bytes, w: Widths) -> Range | None:
    """The root node of a version-2 B-tree header (the name index of a group's links)."""
    if data[:4] != b"BTHD":
        return None
    node_size = struct.unpack_from("<I", data, 6)[0]
    root = _uint(data, 16, w.offset)
    return (root, root + node_size)


def btree_node_size(w: Widths, ndims: int) -> int:
    """Bytes of a full version-1 B-tree node of a chunked dataset with ``ndims`` key offsets."""
    key = 8 + 8 * ndims
    entries = 2 * w.chunk_btree_k
    return 8 + 2 * w.offset + (entries + 1) * key + entries * w.offset


def btree_node(read: Reader, address: int, w: Widths, ndims: int) -> tuple[int, list[Chunk]] | None:
    """``(level, children)`` of the version-1 B-tree node of chunks at ``address``: at level 0 the chunks, above
    it the child nodes (``Chunk.address`` of a node; its size and row are those of its first key). ``None`` if it
    is not such a node."""
    data = read(address, address + btree_node_size(w, ndims))
    if data[:4] != b"TREE" or data[4] != 1:
        return None
    level, used = data[5], struct.unpack_from("<H", data, 6)[0]
    key = 8 + 8 * ndims
    pos = 8 + 2 * w.offset
    if len(data) < pos + used * (key + w.offset) + key:  # a node of a larger "K" than assumed
        data = read(address, address + pos + used * (key + w.offset) + key)
    out = []
    for _ in range(used):
        size = struct.unpack_from("<I", data, pos)[0]
        row = struct.unpack_from("<Q", data, pos + 8)[0]
        out.append(Chunk(_uint(data, pos + key, w.offset), size, row))
        pos += key + w.offset
    return level, out


def heap_collections(refs: bytes, w: Widths) -> np.ndarray:
    """The distinct global heap collection addresses of variable-length references (4-byte length, collection
    address, 4-byte object index each), sorted; references of empty values (address 0) are left out."""
    dtype = np.dtype([("n", "<u4"), ("at", f"<u{w.offset}"), ("index", "<u4")])
    usable = len(refs) // dtype.itemsize * dtype.itemsize
    at = np.frombuffer(refs[:usable], dtype=dtype)["at"]
    return np.unique(at[at != 0]).astype(np.int64)


def collection_ranges(addresses: np.ndarray, gap: int) -> list[Range]:
    """Byte ranges covering the collections at sorted ``addresses``. A library allocates a dataset's collections
    one after the other, all of one size (at least :data:`COLLECTION_MIN`; HDF5 2.0 makes them 64 KiB), so the
    size is taken as the smallest distance between two of them; collections at most that plus ``gap`` apart form
    one range, up to the last one's start + that size (a larger last collection is completed on demand)."""
    if addresses.size == 0:
        return []
    steps = np.diff(addresses)
    size = max(COLLECTION_MIN, int(steps.min())) if steps.size else COLLECTION_MIN
    cuts = np.flatnonzero(steps > size + gap) + 1
    return [(int(run[0]), int(run[-1]) + size) for run in np.split(addresses, cuts)]


def coalesce(ranges: Iterable[Range], gap: int) -> list[Range]:
    """Sorted ranges with overlaps merged and ranges at most ``gap`` bytes apart joined."""
    out: list[list[int]] = []
    for start, stop in sorted(r for r in ranges if r[1] > r[0]):
        if out and start - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], stop)
        else:
            out.append([start, stop])
    return [(a, b) for a, b in out]


# --- planning the fetches of one open file ---------------------------------------------------------------------
#: HDF5's default sieve buffer: a small read of a contiguous dataset fetches this much from its start.
SIEVE = 64 * 1024
#: Collections of the wanted rows at most this far apart are fetched as one range.
COLLECTION_GAP = 4 * COLLECTION_MIN


#: The first round of a plan also fetches the object's first 1/EARLY_SHARE when that is at least EARLY_MIN bytes: a
#: netCDF-4 writer puts the root group's heap and B-trees and the first variables' headers, continuation blocks, chunk
#: indexes and chunks early in the file, so their chains skip rounds. Measured in ``bench/inplace.py``: the busy OCO-3
#: day (28 MB) 9 -> 7 round trips at the same byte fraction (those bytes are read anyway; 1/64: 8 rounds, 1/128: 9);
#: the ATL07 test granules (1-2 MB) keep their rounds (their root heap is at the end) and would pay 1.5-2 points of
#: their byte budget, so objects under 8 MB skip it.
EARLY_SHARE, EARLY_MIN = 32, 256 * 1024


class Fetcher(Protocol):
    """What the planner fetches through (:class:`oco_l3.remote.RemoteFile`)."""

    size: int

    def fetch(self, ranges: Sequence[Range]) -> None: ...

    def read_range(self, start: int, stop: int) -> bytes: ...

    def held(self, start: int, stop: int) -> bytes | None: ...


class _NotHeld(Exception):
    def __init__(self, missing: Range) -> None:
        super().__init__(missing)
        self.range = missing


#: One plan step of one object: yields the byte ranges it needs next and is resumed once they are held; it may
#: start other steps (:meth:`Planner._spawn`). Returns what it found (a header's messages) or ``None``.
Step = Generator[list[Range], None, Any]
#: What a step yields to wait for the next round (another step is fetching what it needs).
WAIT: list[Range] = []
#: ``(key, runs_of, paths)`` of :meth:`Planner.members`: the rows ``runs_of(values of key)`` of the datasets ``paths``.
RowsAfter = tuple[str, Callable[[np.ndarray], Sequence[Range]], Sequence[str]]


class Planner:
    """Fetches, in a few concurrent batches, the bytes h5py will read for some objects of one open file.

    Every object has its own chain of dependent reads (its header, the continuation blocks it names, the dense storage
    of its links and attributes, its chunk index, its chunks; a group's members after its links). Each chain is a
    :data:`Step`; :meth:`_run` runs many at once, so each round trip fetches the next ranges of every chain in one
    batch and a round costs the longest chain, not the sum of the steps (a group's members are walked while the
    continuation blocks of its siblings are still on their way). The public methods are a reader's plan:
    :meth:`members` (the headers below some groups), :meth:`data` (datasets' chunks, their groups walked on the
    way), :meth:`rows` (some rows of variable-length strings and their heap collections). Nothing here reads a
    value: h5py does that afterwards from the bytes fetched.
    """

    def __init__(self, h5: h5py.File, fetcher: Fetcher, w: Widths) -> None:
        self.h5, self.fetcher, self.w = h5, fetcher, w
        self._address: dict[str, int | None] = {}
        self._storage: dict[str, RawData | None] = {}
        self._messages: dict[int, list[tuple[int, bytes]] | None] = {}
        self._dense_done: dict[int, bool] = {}  # heap address -> its dense storage is in (False: on its way)
        early = fetcher.size // EARLY_SHARE
        self._early: list[Range] = [(0, early)] if early >= EARLY_MIN else []  # joins the first round

    @classmethod
    def of(cls, h5: h5py.File, fileobj: Any) -> Planner | None:
        """A planner for a file opened from ``fileobj`` when it can fetch ranges (a remote file), else ``None``."""
        if not all(callable(getattr(fileobj, verb, None)) for verb in ("fetch", "read_range", "held")):
            return None
        w = widths(fileobj.read_range(0, 64))
        return cls(h5, fileobj, w) if w is not None else None

    # -- running steps -------------------------------------------------------------------------------------------
    def _run(self, steps: Iterable[Step]) -> None:
        """Run ``steps`` to their end: each round fetches what every running step asks for in one batch
        (:meth:`Fetcher.fetch`, concurrent GETs)."""
        running: list[tuple[Step, list[Range]]] = []
        for step in steps:
            self._advance(step, running)
        while True:
            if not running:
                return
            asked = [r for _, ranges in running for r in ranges]
            if asked:
                asked += self._early
                self._early = []
            self.fetcher.fetch(asked)
            waiting, running = running, []
            for step, _ in waiting:
                self._advance(step, running)

    def _advance(self, step: Step, running: list[tuple[Step, list[Range]]]) -> None:
        """Resume ``step`` until it asks for bytes not held (then it waits in ``running``) or ends."""
        while True:
            try:
                ranges = next(step)
            except StopIteration:
                return
            if ranges is WAIT:
                running.append((step, []))
                return
            wanted = [(a, min(b, self.fetcher.size)) for a, b in ranges if min(b, self.fetcher.size) > a]
            if any(self.fetcher.held(a, b) is None for a, b in wanted):
                running.append((step, wanted))
                return

    def _held(self, start: int, stop: int) -> bytes:
        stop = min(stop, self.fetcher.size)
        data = self.fetcher.held(start, stop)
        if data is None:
            raise _NotHeld((start, stop))
        return data

    def _maybe(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` when held, else empty (a parse of them then finds nothing)."""
        try:
            return self._held(start, stop)
        except _NotHeld:
            return b""

    # -- the steps of one object ---------------------------------------------------------------------------------
    def address(self, path: str) -> int | None:
        """The object header address of ``path`` from its parent's links (a hard link), or ``None``."""
        path = path.strip("/")
        if not path:
            return self.w.root
        if path not in self._address:
            parent, _, leaf = path.rpartition("/")
            try:
                group = self.h5[parent] if parent else self.h5
                info = group.id.links.get_info(leaf.encode())
                self._address[path] = int(info.u) if info.type == h5py.h5l.TYPE_HARD else None
            except (KeyError, ValueError, TypeError, AttributeError, RuntimeError):  # h5py: "name doesn't exist"
                self._address[path] = None
        return self._address[path]

    def _together(self, steps: list[Step]) -> Generator[list[Range], None, list[Any]]:
        """Run ``steps``, and the ones appended to the list while they run, side by side as one step: each round asks
        for what all of them need next. Returns their results, in order."""
        results: list[Any] = []
        waiting: list[tuple[int, Step, list[Range]]] = []

        def advance(k: int, step: Step) -> None:
            while True:
                try:
                    ranges = next(step)
                except StopIteration as stop:
                    results[k] = stop.value
                    return
                if ranges is WAIT:
                    waiting.append((k, step, []))
                    return
                wanted = [(a, min(b, self.fetcher.size)) for a, b in ranges if min(b, self.fetcher.size) > a]
                if any(self.fetcher.held(a, b) is None for a, b in wanted):
                    waiting.append((k, step, wanted))
                    return

        while True:
            while len(results) < len(steps):
                results.append(None)
                advance(len(results) - 1, steps[len(results) - 1])
            if not waiting:
                return results
            asked = [r for _, _, wanted in waiting for r in wanted]
            yield asked if asked else WAIT
            current, waiting = waiting, []
            for k, step, _ in current:
                advance(k, step)

    def _header(self, address: int, seen: Callable[[list[tuple[int, bytes]]], None] | None = None) -> Step:
        """The messages of the header at ``address`` (``None``: not parsed): its first :data:`HEADER_GUESS` bytes, then
        the rest of its first chunk, then all the continuation blocks known so far at once, round after round.
        ``seen`` gets each round's new messages as they come, so that what they name (a layout, links, dense
        storage) is fetched beside the rest of the chain instead of after it."""
        if address in self._messages:
            known = self._messages[address]
            if seen is not None and known:
                seen(known)
            return known
        yield [(address, address + HEADER_GUESS)]
        start = header_start(self._maybe(address, address + HEADER_GUESS), address)
        messages: list[tuple[int, bytes]] | None = [] if start is not None else None
        # (bytes to fetch, their message bytes, the signature they start with)
        pending: list[tuple[Range, Range, bytes]] = [((address, start.first[1]), start.first, b"")] if start else []
        for _ in range(CHAIN_MAX):  # a chain longer than this is left to h5py
            if not pending or messages is None or start is None:
                break
            yield [fetch for fetch, _, _ in pending if fetch[1] - fetch[0] <= HEADER_BLOCK_MAX]
            batch: list[tuple[int, bytes]] = []
            later: list[tuple[Range, Range, bytes]] = []
            for fetch, inside, signature in pending:
                if fetch[1] - fetch[0] > HEADER_BLOCK_MAX or not self._maybe(*fetch).startswith(signature) \
                        or not self._maybe(*fetch):
                    messages = None
                    break
                for kind, body in block_messages(self._maybe(*inside), start):
                    batch.append((kind, body))
                    if kind == _CONTINUATION and len(body) >= self.w.offset + self.w.length:
                        later.append(continuation_block(body, self.w, start))
            if messages is None:
                break
            messages.extend(batch)
            if seen is not None and batch:
                seen(batch)
            pending = later
        if pending:
            messages = None
        self._messages[address] = messages
        return messages

    def _dense(self, heap: int, trees: list[int]) -> Step:
        """A dense storage (its fractal heap at ``heap``, its index B-trees ``trees``): the heap's header and root
        block (the direct blocks of an indirect root after it), and beside it each B-tree's header and root node.
        Deeper B-tree levels and heaps are left to h5py."""
        if heap in self._dense_done:  # fetched, or being fetched by another step: wait until it is in
            while not self._dense_done[heap]:
                yield WAIT
            return
        self._dense_done[heap] = False
        try:
            yield from self._together([self._heap(heap), *(self._btree2(t) for t in trees)])
        finally:
            self._dense_done[heap] = True

    def _heap(self, address: int) -> Step:
        yield [(address, address + HEAP_HEADER_GUESS)]
        root = heap_root(self._maybe(address, address + HEAP_HEADER_GUESS), self.w)
        if root is None:
            return
        yield [root.range(self.w)]
        if root.rows:
            yield heap_direct_blocks(self._maybe(*root.range(self.w)), root, self.w)

    def _btree2(self, address: int) -> Step:
        yield [(address, address + BTREE2_HEADER_GUESS)]
        root = btree2_root(self._maybe(address, address + BTREE2_HEADER_GUESS), self.w)
        if root is not None:
            yield [root]

    def _dense_of(self, batch: list[tuple[int, bytes]]) -> list[Step]:
        return [self._dense(heap, trees) for heap, trees in dense_storage(batch, self.w)]

    def _reacting(self, path: str, react: Callable[[list[tuple[int, bytes]]], list[Step]]) -> Step:
        """``path``'s header, its dense storage and the steps ``react`` starts from each round's new messages, all
        side by side; returns the header's messages once every one of them is done."""
        address = self.address(path)
        if address is None:
            return None
        steps: list[Step] = []
        steps.append(self._header(address, lambda batch: steps.extend([*self._dense_of(batch), *react(batch)])))
        return (yield from self._together(steps))[0]

    def _links(self, path: str, batch: list[tuple[int, bytes]], names: Callable[[str], bool],
               child: Callable[[str], Step]) -> list[Step]:
        """The steps ``child(path/name)`` of the hard links named in ``batch`` (compact link storage: Link messages in
        the group's header) for which ``names(name)``; their addresses are kept, so no h5py call looks them up."""
        out = []
        for kind, body in batch:
            link = link_target(body, self.w) if kind == LINK else None
            if link is None or link[1] is None or not names(link[0]):
                continue
            sub = f"{path}/{link[0]}" if path else link[0]
            self._address.setdefault(sub, link[1])
            out.append(child(sub))
        return out

    def _object(self, path: str) -> Step:
        """An object's header and dense storage (what h5py reads to open it, list a group or read attributes)."""
        return (yield from self._reacting(path, lambda batch: []))

    def _chunks(self, path: str, *, fetch_chunks: bool = True) -> Step:
        """A dataset's header and, as soon as its layout message is in, its chunk index (contiguous data itself) and,
        with ``fetch_chunks``, its chunks."""
        def react(batch: list[tuple[int, bytes]]) -> list[Step]:
            return [self._index(path, [m], fetch_chunks) for m in batch if m[0] == _LAYOUT]

        return (yield from self._reacting(path, react))

    def _index(self, path: str, messages: list[tuple[int, bytes]] | None, fetch_chunks: bool) -> Step:
        raw = storage(messages, self.w) if messages is not None else None
        self._storage.setdefault(path.strip("/"), raw)
        if raw is None or raw.kind == "compact":
            return
        if raw.kind in ("contiguous", "single"):
            if fetch_chunks and raw.size:
                yield [(raw.address, raw.address + raw.size)]
            return
        nodes = [raw.address]
        while nodes:
            yield [(a, a + btree_node_size(self.w, raw.ndims)) for a in nodes]
            below: list[Chunk] = []
            chunks: list[Chunk] = []
            for address in nodes:
                try:
                    node = btree_node(self._held, address, self.w, raw.ndims)
                except _NotHeld as gap:  # a node of a larger "K" than assumed
                    yield [gap.range]
                    node = btree_node(self._maybe, address, self.w, raw.ndims)
                if node is None:
                    continue
                level, children = node
                (chunks if level == 0 else below).extend(children)
            if chunks and fetch_chunks:
                yield [(c.address, c.address + c.size) for c in chunks]
            nodes = [c.address for c in below]

    def _walk(self, group: str, below: dict[str, Any], leaf: Callable[[str], Step]) -> Step:
        """``group``'s header and links, and the members named in ``below`` (a tree: a member's own dict for a group
        to walk into, ``None`` for a dataset or a group taken whole), each on its own as soon as its link is read:
        groups walked the same way, others by ``leaf``. A member whose link is not in the header (dense link storage,
        an old-style group) is looked up through h5py once the group's header and storage are in."""
        started: set[str] = set()

        def member(path: str) -> Step:
            name = path.rpartition("/")[2]
            started.add(name)
            sub = below[name]
            return self._walk(path, sub, leaf) if isinstance(sub, dict) else leaf(path)

        yield from self._reacting(group, lambda batch: self._links(group, batch, below.__contains__, member))
        rest = [member(f"{group}/{name}" if group else name) for name in list(below) if name not in started]
        yield from self._together(rest)

    def _members(self, path: str, depth: int, index: bool, data: Callable[[str], bool] | None) -> Step:
        """An object's header and dense storage; then a dataset's chunk index (with ``index``: as soon as its layout
        is read) and its chunks (when ``data(path)``), or a group's members each on its own (down to ``depth`` more
        levels of groups; a member named by a Link message as soon as it is read)."""
        started: set[str] = set()

        def member(sub: str) -> Step:
            started.add(sub.rpartition("/")[2])
            return self._members(sub, depth - 1, index, data)

        def react(batch: list[tuple[int, bytes]]) -> list[Step]:
            out = [self._index(path, [m], False) for m in batch if index and m[0] == _LAYOUT]
            if depth >= 0:
                out += self._links(path, batch, lambda name: True, member)
            return out

        messages = yield from self._reacting(path, react)
        if messages is None:
            return
        if any(kind == _LAYOUT for kind, _ in messages):  # a dataset: h5py can open it now
            if index and data is not None and _asks(data, path):
                yield from self._index(path, messages, fetch_chunks=True)  # the index is held: the chunks
            return
        if depth < 0 or not any(kind in (LINK_INFO, SYMBOL_TABLE) for kind, _ in messages):
            return
        try:  # dense or old-style link storage: h5py lists the links from the bytes just fetched
            node = self.h5[path] if path else self.h5
            names = [n for n in node if n not in started and isinstance(node.get(n, getlink=True), h5py.HardLink)]
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError):
            return
        yield from self._together([member(f"{path}/{name}" if path else name) for name in names])

    # -- a reader's plan -------------------------------------------------------------------------------------------
    def members(self, groups: Iterable[str] = ("",), depth: int = 1, *, index: bool = True,
                data: Callable[[str], bool] | None = None, rows_after: RowsAfter | None = None) -> None:
        """Fetch the headers (and dense storage) of ``groups`` (``""`` the root), of their members and, ``depth``
        levels of groups down, of their groups' members; with ``index`` also the chunk index (B-tree nodes, about 2 KB)
        of every chunked dataset met, so that a later :meth:`data` fetches the chunks at once, and the chunks too of
        the datasets for which ``data(path)`` is true (asked once its header is in: h5py can open it). ``rows_after`` is
        ``(key, runs_of, paths)``: meanwhile, fetch the data of dataset ``key`` and, once h5py can read its values, the
        rows ``runs_of(values)`` of the string datasets ``paths`` (:meth:`rows`): the rows a reader reads depend on
        another dataset, and that chain then runs beside the walk instead of after it."""
        steps = [self._members(g.strip("/"), depth, index, data) for g in groups]
        if rows_after is not None:
            steps.append(self._rows_after(*rows_after))
        self._run(steps)

    def _rows_after(self, key: str, runs_of: Callable[[np.ndarray], Sequence[Range]], paths: Sequence[str]) -> Step:
        yield from self._walk("", _tree([key]), self._chunks)
        try:  # h5py decodes them from the bytes just fetched
            values = np.asarray(self.h5[key][()])
        except (KeyError, OSError, ValueError, TypeError, RuntimeError):
            return
        runs = list(runs_of(values))
        if runs:
            yield from self._walk("", _tree(paths), lambda p: self._rows(p, runs))

    def links(self, groups: Iterable[str]) -> None:
        """Fetch what listing the members of ``groups`` (``""`` the root) reads: their headers and dense storage."""
        self._run(self._walk(g.strip("/"), {}, self._object) for g in groups)

    def headers(self, paths: Iterable[str]) -> None:
        """Fetch the headers (and dense storage) of ``paths``, groups or datasets, their groups walked on the way."""
        self._run([self._walk("", _tree(paths), self._object)])

    def storage(self, path: str) -> RawData | None:
        path = path.strip("/")
        if path not in self._storage:
            address = self.address(path)
            messages = header_messages(self.fetcher.read_range, address, self.w) if address is not None else None
            self._storage[path] = storage(messages, self.w) if messages is not None else None
        return self._storage[path]

    def data(self, paths: Iterable[str]) -> None:
        """Fetch the raw data of the datasets ``paths``: each one's groups walked from the root, then its header, chunk
        index and chunks, every chain at its own pace (a round trip per step of the longest)."""
        self._run([self._walk("", _tree(paths), self._chunks)])

    def rows(self, paths: Iterable[str], runs: Sequence[Range]) -> None:
        """Fetch what h5py reads for the rows ``[start, stop)`` of each run of contiguous variable-length string
        datasets: the runs' references, then the heap collections they point to (runs of nearby collections as one
        range). Other layouts are left to h5py."""
        if runs:
            self._run([self._walk("", _tree(paths), lambda path: self._rows(path, runs))])

    def _rows(self, path: str, runs: Sequence[Range]) -> Step:
        """The dataset's header and, as soon as its layout is read, :meth:`_rows_of` its layout."""
        return (yield from self._reacting(path, lambda batch: [self._rows_of(m, runs) for m in batch if m[0] == _LAYOUT]))

    def _rows_of(self, layout: tuple[int, bytes], runs: Sequence[Range]) -> Step:
        raw = storage([layout], self.w)
        if raw is None or raw.kind != "contiguous":
            return
        item = 8 + self.w.offset
        refs = [(raw.address + item * a, raw.address + min(raw.size, max(item * b, item * a + SIEVE))) for a, b in runs]
        yield refs
        held = b"".join(self._maybe(raw.address + item * a, raw.address + min(raw.size, item * b)) for a, b in runs)
        yield collection_ranges(heap_collections(held, self.w), COLLECTION_GAP)


def _asks(data: Callable[[str], bool], path: str) -> bool:
    """``data(path)``; ``False`` if h5py cannot tell (a damaged header: the reader then fails on its own)."""
    try:
        return bool(data(path))
    except (KeyError, OSError, ValueError, TypeError, RuntimeError):
        return False


def _tree(paths: Iterable[str]) -> dict[str, Any]:
    """``["a/b/c", "a/d", "e"]`` -> ``{"a": {"b": {"c": None}, "d": None}, "e": None}``."""
    root: dict[str, Any] = {}
    for path in paths:
        parts = [p for p in path.strip("/").split("/") if p]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if parts:
            node.setdefault(parts[-1], None)
    return root
