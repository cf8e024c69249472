"""``python -m structfree_dask.cli``: the ``structfree-dask`` command line."""

import sys

from . import main

sys.exit(main())
