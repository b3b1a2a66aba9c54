"""``python -m posekit.cli``: the posekit command (e.g. under torchrun)."""

import sys

from posekit.cli import main

sys.exit(main())
