import sys

from sentryroute.cli import main

sys.exit(main())
