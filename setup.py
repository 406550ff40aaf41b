"""Compiles the forwarder's strict wire check with mypyc; everything else about the package is in pyproject.toml.

`forwarder/sentryroute_forwarder/route/wirecheck.py` is typed Python that mypyc turns into a C extension
(~70x faster than the same module interpreted; docs/reliability.md). A C compiler and the Python headers are
needed to install the package; SENTRYROUTE_PURE_PYTHON=1 installs without them, and the forwarder then runs the
interpreted walker and says so at start (a warning and `sentryroute_wire_check_info{mode="interpreted"}`).
"""

import os

from setuptools import setup

WIRE_CHECK = "forwarder/sentryroute_forwarder/route/wirecheck.py"

ext_modules = []
if os.environ.get("SENTRYROUTE_PURE_PYTHON", "") not in ("1", "true", "yes"):
    from mypyc.build import mypycify

    # No config file: the project's [tool.mypy] loads plugins the isolated build environment does not have.
    ext_modules = mypycify(["--config-file=", WIRE_CHECK], opt_level="3")

setup(ext_modules=ext_modules)
