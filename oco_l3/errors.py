"""One base error and a few named leaves.

Two families matter to callers:

* :class:`PermanentError` -- the input can never succeed as it is (corrupt granule, bad config, hostile name).
  Skip it, record the one-line reason, go on with the other inputs. Never retried.
* :class:`TransientError` -- a retry may succeed (network, throttling, a store locked by another writer).
  Only these are retried by the orchestration layer and requeued by the queue consumer.

:func:`classify` is the one place that decides, by type, whether a failure is retried: the CLI, the flows (the
tasks' retry condition and the state a granule is left in), the queue consumer and the global product all ask it.
An exception that oco_l3 did not raise on purpose is permanent (it is a bug or an input nobody foresaw: retrying
cannot cure it, and it must alert), except the standard library's own network failures (``ConnectionError``,
``TimeoutError``), which are transient.

Every message names the input and the problem in one line, and never carries a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class OcoL3Error(Exception):
    """Base class of every error raised on purpose by oco_l3."""


class PermanentError(OcoL3Error):
    """An input or setting that will fail again on retry. Skip and record; do not retry."""


class TransientError(OcoL3Error):
    """A failure a retry can fix (network, throttling, a busy lock). Retry with backoff."""


# --- permanent leaves ------------------------------------------------------------------------------------
class ConfigInvalid(PermanentError):
    """The run configuration (or a queue message) is malformed: raise before any work or network call."""


class GranuleUnreadable(PermanentError):
    """The granule cannot be opened as netCDF-4/HDF5 (zero bytes, truncated, not HDF5, wrong container)."""


class GranuleSchemaMismatch(PermanentError):
    """The granule opens but lacks a group or variable the product needs, or has one of the wrong type."""


class GranuleNameUnrecognised(PermanentError):
    """A file name does not follow any product naming convention, so mission and day are unknown."""


class TargetFileInvalid(PermanentError):
    """A target file is unreadable or an entry is malformed (bad bbox, unsafe id)."""


class CaptureDegenerate(PermanentError):
    """A capture cannot be gridded (too few, collinear or non-finite soundings). The capture is skipped."""


class GridInvalid(PermanentError):
    """A grid specification is impossible (empty bbox, too many cells)."""


class UnsafePath(PermanentError):
    """A name taken from data or config would resolve outside the output root."""


class StoreCorrupt(PermanentError):
    """An existing output store cannot be read or does not match the product layout."""


class MessageInvalid(PermanentError):
    """A queue message is malformed or names inputs that can never succeed."""


class BeamStrengthUnknown(PermanentError):
    """ICESat-2: strong/weak beams were asked for, but the granule's beam groups have no ``atlas_beam_type`` and
    ``orbit_info/sc_orient`` does not settle it (missing, transition, or a change of orientation in the granule)."""


class BeamsEmpty(PermanentError):
    """ICESat-2: the selected beams of a granule hold no segment at all (nothing was read). Not for segments that
    were read and then filtered out: that is an empty day, not an error."""


class SegmentsOffGrid(PermanentError):
    """ICESat-2: every segment a granule kept after filtering falls outside the output grid(s)."""


class CaptureUnwritten(PermanentError):
    """A gridded capture's stores or COGs could not be written for a reason a retry will not cure (the granule's
    other captures were written). Raised once per granule, after every capture was tried."""


# --- transient leaves ------------------------------------------------------------------------------------
class SourceUnavailable(TransientError):
    """A remote source (CMR, S3, HTTP) did not answer or answered with a server error."""


class SourceThrottled(TransientError):
    """A remote source asked us to slow down (HTTP 429/503 SlowDown)."""


class StoreLocked(TransientError):
    """Another writer holds the store lock and did not release it in time."""


class CaptureWriteBlocked(TransientError):
    """A gridded capture's stores or COGs were not written because of something a retry may cure (a busy store
    lock, the network); the granule's other captures were written. Raised once per granule."""


class WorkerProcessDied(TransientError):
    """A worker process of :mod:`oco_l3.process_pool` ended in the middle of a call (killed, out of memory). The
    call's work was not finished; the next call gets a new process."""


class GlobalDayBlocked(TransientError):
    """A global-product day was not written because one of its granules (or a store commit) failed for a reason a
    retry may cure; the stored day is untouched (a good day is never replaced by a partial one)."""


class InputsBlocked(TransientError):
    """Some inputs of a queue message failed for a reason a retry may cure: the message is retried as a whole
    (its outputs are idempotent upserts)."""


def one_line(exc: BaseException) -> str:
    """The exception as one line: its type name and its first message line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


Retry = Literal["transient", "permanent"]
#: Exceptions of the standard library that mean the network failed: transient although oco_l3 did not raise them.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Verdict:
    """What :func:`classify` decided: ``kind`` and the one-line ``reason`` (``Type: message``; an exception oco_l3
    did not raise on purpose is prefixed ``unexpected``)."""

    kind: Retry
    reason: str

    @property
    def transient(self) -> bool:
        return self.kind == "transient"


def classify(exc: BaseException) -> Verdict:
    """Transient or permanent, by the exception's type (never by its text): :class:`TransientError` and the
    network errors of :data:`NETWORK_ERRORS` are transient; :class:`PermanentError`, any other
    :class:`OcoL3Error` and every unexpected exception are permanent."""
    transient = isinstance(exc, TransientError) or (not isinstance(exc, OcoL3Error) and isinstance(exc, NETWORK_ERRORS))
    prefix = "" if isinstance(exc, OcoL3Error) else "unexpected "
    return Verdict("transient" if transient else "permanent", prefix + one_line(exc))
