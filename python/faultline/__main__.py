"""python3 -m faultline: the command line (cli.py); ./faultline runs this."""

import sys

# Checked before the rest is imported: an older interpreter would fail on
# tomllib (3.11) with a traceback that does not say why.
if sys.version_info < (3, 11):
    sys.exit(f"faultline: needs Python 3.11 or later; {sys.executable} is "
             f"{sys.version.split()[0]}")

from .cli import main  # noqa: E402 - after the version check, on purpose

sys.exit(main())
