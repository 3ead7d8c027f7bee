"""``python -m fractal_embeddings.cli``: the ``fractal`` console script."""

import sys

from . import main

sys.exit(main())
