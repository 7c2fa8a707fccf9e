"""``python -m mlyard.serving.batch``: see :mod:`mlyard.serving.batch.cli`."""

import sys

from mlyard.serving.batch.cli import main

sys.exit(main())
