"""oco-l3: NASA Level-2 soundings (OCO-2/OCO-3 XCO2 and SIF, ICESat-2) to analysis-ready Level-3 products.

The library is pure science and I/O; it never imports Prefect (orchestration lives in ``flows/`` and ``tasks/``).
"""

__version__ = "0.1.0"
