"""Skip marks and the rounding unit shared by the Triton orthogonalizer's test files."""

import pytest

from golfprof.model import ortho_triton as OT

try:
    import triton  # noqa: F401

    HAVE_TRITON = True
except Exception:  # noqa: BLE001 (ImportError, or a broken install raising anything)
    HAVE_TRITON = False

needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="triton is not importable (pip install triton)")
needs_gpu = pytest.mark.skipif(not OT.available()[0], reason=OT.available()[1])

U_BF16 = 2.0 ** -8  # bf16's unit roundoff: 8-bit significand, round to nearest
