"""SYNTHETIC sample data: OCO L2 Lite granules in the exact real layouts, with analytic fields.

The package: ``_fields`` (analytic fields, quality flags, fills), ``_geometry`` (swaths, background, the sounding
table), ``_layouts`` (Lite FP / Lite SIF netCDF-4 layouts), ``_days`` (the public writers), ``_corrupt`` (broken
granules).

Nothing here is a real measurement. Every file written by this module says so in its global attributes
(``title`` and ``comment`` contain "SYNTHETIC oco-l3 sample data"). The files follow formats.md sections 1 and 2:

Which layout, name, platform, build, target list and capture plan a granule gets comes from its product's
:class:`~oco_l3.missions.MissionSpec` (a new registered product needs nothing here unless its layout is new).

* Lite FP (``oco3_LtCO2_*``, ``oco2_LtCO2_*``): dimension ``sounding_id`` (also a coordinate variable),
  ``levels`` = 20, ``vertices`` = 4, ``bands`` = 3, ``epoch_dimension`` = 7 and (OCO-2 only) ``footprints`` = 8;
  float32 variables with ``missing_value = -999999``; int8 ``xco2_quality_flag``; ``time`` in seconds since
  1970-01-01; groups ``/Sounding`` (``operation_mode``, string ``target_id``/``target_name`` -- OCO-3 only by
  default, OCO-2 files lack them), ``/Retrieval``, ``/Meteorology``, ``/Preprocessors``.
* Lite SIF (``oco3_LtSIF_*``, ``oco2_LtSIF_*``): dimensions ``sounding_dim``, ``vertex_dim``, ``sequences_dim``; float32 variables
  with ``_FillValue = missing_value = -999999``; ``Delta_Time`` in seconds since 1990-01-01; SIF mode codes
  (3 = SAM, 4 = transition) in ``/Metadata/MeasurementMode``; targets in ``/Sequences``.

Values: every float science variable is an analytic function of latitude and longitude, given in :data:`ANALYTIC`
(evaluated in float64 on the float32 coordinates stored in the file, then stored as float32), so a test can
check a read or gridded value against the formula. Most are LINEAR (``linear`` and ``cubic`` gridding must give
them back exactly); the ones in :data:`CURVED` are not, to measure interpolation errors: ``Retrieval/tcwv`` is a
sine/cosine pattern (:func:`_wave`), ``Retrieval/aod_total`` a field of Gaussian plumes (:func:`_plume`), and
``Sounding/solar_azimuth_angle`` an azimuth that wraps around 360 degrees several times across any capture
(:func:`_azimuth`). Integer variables in :data:`ANALYTIC` are piecewise-constant functions of the coordinates; the
quality flags come from a deterministic hash of the coordinates (about 20 % flagged). Variables in :data:`FILLED`
hold ``-999999`` where :func:`fill_mask` is true (about 3 % of soundings).

Storage: as the netCDF-4 writers of the Lite files store them (:data:`LITE_STORAGE`): every numeric variable
chunked and compressed with zlib (deflate) after the shuffle filter, netCDF4-python's default level 4 and netCDF-C's
default chunk shapes for the variable's real shape (formats.md gives no chunking or deflate level for the Lite
files, so the library defaults stand in); strings are variable-length (HDF5 cannot filter them). The byte counts of
in-place reads (``bench/inplace.py``) are measured on these files.

Composition (SYNTHETIC; calibrated against formats.md 1.2): a real Lite FP file stores about **430 B per sounding**
(``oco2_LtCO2_200404``: 64,424,455 bytes; a day has about 149,000 soundings, ``oco2_LtCO2_200109``; OCO-2 B10 files
have no target strings; OCO-3 days are about 50 MB). The busy OCO-3 day here (90,600 soundings, measured by
``bench/inplace.py``'s ``composition``) stores 313 B per sounding:

* the four (N, 20) profiles, 157 B (``_layouts._profiles``: real shapes, per-sounding variation and float32 noise at full
  precision, about 2 B per value after shuffle + zlib: pressure levels 22 B, prior 38, kernel 51, weights 45);
* the two string variables, 122 B: 16-byte references plus one global-heap object per sounding, the real layout;
* per-sounding numbers, 25 B: about 30 variables, analytic test truth (0.5-2.6 B per value, where measured
  float32 values would take about 2 B, like the profiles' noise);
* geolocation and time, 8 B (regular synthetic swaths); bookkeeping, under 1 B.

So the profiles and strings weigh about what they would in a real file; if a real file's profiles take what these
do, its other ~270 B per sounding are per-sounding variables this module does not write (formats.md 1.5 lists
``/Retrieval`` members such as ``dpfrac``, ``co2_grad_del``, ``aod_dust``) and that the default selection (every
per-sounding variable) reads: an in-place read fetches a larger fraction of a real object than of these files, by an
amount the sources at hand do not let us measure.

Geometry: a capture is a swath of 8 footprints across-track times frames along-track; footprints are
1.6 x 2.1 km (OCO-2: 1.29 x 2.25 km) quadrilaterals that tile the swath exactly; SAMs are laid out as adjacent
strips (boustrophedon), rotated by about 12 degrees, centred on the target centroid. Frames are 1/3 s apart.
Background soundings (nadir/glint, target "none") follow a track over the Atlantic (-55..55 N, -35..-5 E).
"""

from __future__ import annotations

from oco_l3.sample_data._corrupt import CORRUPT_EXPECTED, write_corrupt_variants
from oco_l3.sample_data._days import (
    DayPlan,
    day_plan,
    sample_filename,
    write_granule,
    write_sample_day,
    write_sample_tree,
)
from oco_l3.sample_data._fields import (
    ANALYTIC,
    ANALYTIC_FP,
    ANALYTIC_SIF,
    CURVED,
    DEFAULT_DELTA_TIME_UNITS,
    FILL,
    FILLED,
    FOOTPRINT_KM,
    FRAME_SECONDS,
    KM_PER_DEG,
    SIF_EPOCH_OFFSET,
    SYNTHETIC,
    UNIX_EPOCH,
    analytic_keys,
    fill_mask,
    fp_quality_flag,
    sif_quality_flag,
)
from oco_l3.sample_data._geometry import CaptureSpec
from oco_l3.sample_data._layouts import CONTIGUOUS, LEVELS, LITE_STORAGE, Storage

__all__ = ["ANALYTIC", "ANALYTIC_FP", "ANALYTIC_SIF", "CONTIGUOUS", "CORRUPT_EXPECTED", "CURVED", "CaptureSpec", "DEFAULT_DELTA_TIME_UNITS", "DayPlan", "FILL", "FILLED", "FOOTPRINT_KM", "FRAME_SECONDS", "KM_PER_DEG", "LEVELS", "LITE_STORAGE", "SIF_EPOCH_OFFSET", "SYNTHETIC", "Storage", "UNIX_EPOCH", "analytic_keys", "day_plan", "fill_mask", "fp_quality_flag", "sample_filename", "sif_quality_flag", "write_corrupt_variants", "write_granule", "write_sample_day", "write_sample_tree"]
