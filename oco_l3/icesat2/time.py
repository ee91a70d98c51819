"""GPS time to UTC for ICESat-2 (``delta_time + atlas_sdp_gps_epoch`` = GPS seconds since 1980-01-06).

GPS time has no leap seconds; UTC does. ``GPS - UTC`` is taken from the table of leap seconds below
(IERS Bulletin C; 18 s since 2017-01-01). A leap second announced after this table was written must be
added here: :data:`LEAP_SECONDS` is the single place to edit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

GPS_EPOCH = np.datetime64("1980-01-06T00:00:00", "ns")
#: GPS seconds from 1980-01-06 to 2018-01-01 (the ATLAS SDP epoch; value of ``atlas_sdp_gps_epoch``).
ATLAS_SDP_GPS_EPOCH = 1198800018.0

#: (UTC date from which the offset applies, GPS - UTC in seconds)
LEAP_SECONDS: tuple[tuple[str, int], ...] = (
    ("1981-07-01", 1), ("1982-07-01", 2), ("1983-07-01", 3), ("1985-07-01", 4), ("1988-01-01", 5),
    ("1990-01-01", 6), ("1991-01-01", 7), ("1992-07-01", 8), ("1993-07-01", 9), ("1994-07-01", 10),
    ("1996-01-01", 11), ("1997-07-01", 12), ("1999-01-01", 13), ("2006-01-01", 14), ("2009-01-01", 15),
    ("2012-07-01", 16), ("2015-07-01", 17), ("2017-01-01", 18),
)


def _gps_change_points() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    utc = np.array([np.datetime64(d, "ns") for d, _ in LEAP_SECONDS])
    offsets = np.array([o for _, o in LEAP_SECONDS], dtype=np.float64)
    # GPS seconds at which each new offset starts counting.
    gps = (utc - GPS_EPOCH).astype("timedelta64[ns]").astype(np.float64) / 1e9 + offsets
    return np.concatenate([[-np.inf], gps]), np.concatenate([[0.0], offsets])


_CHANGES, _OFFSETS = _gps_change_points()


def gps_minus_utc(gps_seconds: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Leap-second offset ``GPS - UTC`` (s) at each GPS time (seconds since 1980-01-06)."""
    g = np.asarray(gps_seconds, dtype=np.float64)
    idx = np.searchsorted(_CHANGES, g, side="right") - 1
    return np.asarray(_OFFSETS[np.clip(idx, 0, len(_OFFSETS) - 1)], dtype=np.float64)


def gps_to_utc(gps_seconds: npt.ArrayLike) -> npt.NDArray[np.datetime64]:
    """GPS seconds since 1980-01-06 to UTC ``datetime64[ns]``; NaN becomes NaT."""
    g = np.asarray(gps_seconds, dtype=np.float64)
    utc_seconds = g - gps_minus_utc(g)
    finite = np.isfinite(utc_seconds)
    ns = np.zeros(g.shape, dtype=np.int64)
    whole = np.floor(utc_seconds[finite])
    ns[finite] = whole.astype(np.int64) * 1_000_000_000 + np.round(
        (utc_seconds[finite] - whole) * 1e9
    ).astype(np.int64)
    out = GPS_EPOCH + ns.astype("timedelta64[ns]")
    out[~finite] = np.datetime64("NaT")
    return out


def delta_time_to_utc(
    delta_time: npt.ArrayLike, epoch: float = ATLAS_SDP_GPS_EPOCH
) -> npt.NDArray[np.datetime64]:
    """ICESat-2 ``delta_time`` (GPS seconds since the ATLAS SDP epoch) to UTC ``datetime64[ns]``."""
    return gps_to_utc(np.asarray(delta_time, dtype=np.float64) + epoch)


def decimal_year(utc: npt.NDArray[np.datetime64]) -> npt.NDArray[np.float64]:
    """UTC times as decimal years (year + elapsed fraction of that calendar year); NaT becomes NaN."""
    t = np.asarray(utc, dtype="datetime64[ns]")
    year = t.astype("datetime64[Y]")
    start = year.astype("datetime64[ns]")
    end = (year + np.timedelta64(1, "Y")).astype("datetime64[ns]")
    frac = (t - start).astype(np.float64) / (end - start).astype(np.float64)
    out = year.astype(np.int64).astype(np.float64) + 1970.0 + frac
    out[np.isnat(t)] = np.nan
    return out
