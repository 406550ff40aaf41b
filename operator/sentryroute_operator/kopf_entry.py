"""`kopf run -A -m sentryroute_operator.kopf_entry`: the operator on kopf's own command line.

Settings come from the environment (`SENTRYROUTE_*`, SPEC §1) exactly as for `sentryroute operator`;
handlers go to kopf's default registry, which `kopf run` uses.
"""

from __future__ import annotations

import argparse

import kopf

from .main import add_arguments
from .runtime import OperatorApp
from .settings import settings_from_args

_parser = argparse.ArgumentParser()
add_arguments(_parser)
app = OperatorApp(settings_from_args(_parser.parse_args([])), registry=kopf.get_default_registry())
