"""The command line. Importing it configures the process for fleetserve's work.

One build or serving process runs per core, so numpy's BLAS must not start a thread pool
of its own per process: that oversubscribes the cores. The variables are read when numpy
loads, hence here, before any command module imports it; an explicit setting wins.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
