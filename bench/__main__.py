"""`python -m bench [--only NAME] [--quick]`: see bench/run.py."""

import sys

from bench.run import main

sys.exit(main())
