"""Scattered-point interpolation with one triangulation per point set, shared by every variable.

:class:`PointInterpolator` is built once from the sounding centres of one capture and one QF pass, then evaluates
all float variables of the pass in one call (``(N, k)`` values -> ``(M, k)`` results) and integer/flag variables
by nearest neighbour (never averaged). Query points are located in the triangulation once
(:meth:`PointInterpolator.locate`) and the :class:`Location` is reused by every method.

Methods. ``linear`` is barycentric interpolation on the Delaunay triangles (what ``LinearNDInterpolator`` does).
``cubic`` is the Clough-Tocher C1 cubic (the element of ``CloughTocher2DInterpolator`` /
``griddata(method="cubic")``) with locally estimated vertex gradients: a weighted least-squares fit over each
vertex's neighbours (a quadratic where it has 5 or more, else a plane) -- its Delaunay 1-ring inside the point set,
its 2-ring at the edge of it, never across the hull's long slivers (:func:`gradient_stencil`) -- where SciPy solves
a global curvature-minimising problem. Both reproduce linear fields exactly; on the SYNTHETIC curved fields ours has
0.3-1.1x SciPy's RMS error on a sine/cosine pattern, 0.6-1.9x on narrow Gaussian plumes (README, "How it differs";
tests in tests/test_gridding.py). The local fit is a fixed sparse operator per triangulation, so
all variables get their gradients in one product; the Bezier ordinates and their evaluation are vectorised over
points and variables at once. ``nearest`` is the nearest point (a rasterised Voronoi map on grids, else brute
force or a k-d tree).

Coordinates. Points live in a local plane: ``x = (lon - lon0) * cos(lat0)``, ``y = lat - lat0`` around the centre
of the point set, with longitudes unwrapped to within 180 degrees of ``lon0``. This is an affine map of lon/lat, so
a field linear in lon/lat stays linear and comes back exactly under ``linear`` and ``cubic``; it makes the
triangles and the nearest-neighbour distances closer to those on the ground.

Policies.

* Outside the convex hull of the points ``linear`` and ``cubic`` return NaN; ``nearest`` returns a value anywhere.
* Missing values (NaN) never become numbers, and never poison values elsewhere (:func:`oco_l3.gridding.grid_capture`
  avoids them altogether: it builds one interpolator per set of points where the variables have values): a result
  is NaN for a variable when the triangle that contains it has a vertex whose value is missing (``linear`` and
  ``cubic``), or when the nearest point's value is missing (``nearest``). For ``cubic``, a vertex's gradient is
  fitted on its neighbours with a finite value only (one operator per distinct missing pattern, cached), so a NaN
  never reaches a gradient.
* Degenerate point sets -- fewer than 3 points, all collinear, all duplicates -- cannot be triangulated: every
  method then falls back to nearest neighbour (logged) instead of raising. Points with non-finite coordinates are
  ignored. No finite point at all raises :class:`~oco_l3.errors.CaptureDegenerate`.

The package, by concept: :mod:`~oco_l3.interpolation.interpolator` (the interpolator of one point set, its
subsets and located points), :mod:`~oco_l3.interpolation.cells` (grid cells located by rasterising triangles),
:mod:`~oco_l3.interpolation.triangles` (affine maps, barycentric interpolation, matching triangles),
:mod:`~oco_l3.interpolation.gradients` (the cubic's vertex gradients), :mod:`~oco_l3.interpolation.clough_tocher`
(the cubic element), :mod:`~oco_l3.interpolation.voronoi` (Voronoi fans for ``nearest``) and
:mod:`~oco_l3.interpolation.runs` (runs of grid cells).
"""

from oco_l3.interpolation.gradients import LONG_EDGE, gradient_stencil
from oco_l3.interpolation.interpolator import METHODS, Location, Method, PointInterpolator, Subset
from oco_l3.interpolation.triangles import match_triangles

__all__ = ["METHODS", "LONG_EDGE", "Location", "Method", "PointInterpolator", "Subset", "gradient_stencil",
           "match_triangles"]
