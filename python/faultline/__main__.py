"""python3 -m faultline: the command line (cli.py); ./faultline runs this."""

import sys

from .cli import main

sys.exit(main())
