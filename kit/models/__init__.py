"""Models: ML Commons packages (:mod:`kit.models.package`, :mod:`kit.models.export`) and the offline CLIP.

Nothing heavy is imported here; torch and friends load inside the functions that need them.
"""

from __future__ import annotations
