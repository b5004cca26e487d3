import sys

from atlas_sweeps.cli import main

sys.exit(main())
