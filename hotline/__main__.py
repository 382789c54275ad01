"""`python -m hotline` is the `hotline` command."""

import sys

from hotline.cli.main import main

sys.exit(main())
