"""Face detector benchmark: detection rate and ms per 640x480 frame on one core.

Importing this package pins numpy/BLAS/OpenMP to one thread before they load (as
``bench.compare`` does), so every detector is timed on one core.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"
