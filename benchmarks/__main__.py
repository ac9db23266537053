"""`python -m benchmarks`: the whole suite (see `benchmarks.run_all`)."""

import sys

from benchmarks.run_all import main

sys.exit(main())
