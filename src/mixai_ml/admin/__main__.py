"""``python -m mixai_ml.admin``: the same as ``mixai-admin``."""

import sys

from mixai_ml.admin.cli import main

sys.exit(main())
