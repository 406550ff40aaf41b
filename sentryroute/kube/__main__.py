"""`python -m sentryroute.kube`: see main.py."""

import sys

from sentryroute.kube.main import main

sys.exit(main())
