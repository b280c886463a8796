"""``python -m convrec``: the ``convrec`` command, also where no console script is on the PATH."""

import sys

from convrec.cli.main import main

sys.exit(main())
