"""facegate vs the systems a user would pick instead: accuracy, speed and size, in one run.

Importing this package pins numpy/BLAS/OpenMP to one thread (the variables are read
when those libraries load, so this must happen before they are imported): the door
device runs the pipeline on one core and dlib's calls are single-threaded, so every
system is timed on one thread.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"
