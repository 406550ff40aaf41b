"""A local Sentry stand-in (Web API subset + OTLP ingest + fault injection), faithful to docs/sentry-facts.md.

async with SentryEmulator(EmulatorConfig(page_size=2)) as emu:       # or .running_in_thread() in sync code
    emu.state.add_org("acme"); emu.state.add_team("acme", "backend")
    project = emu.state.add_project("acme", "backend", "checkout")    # with a "Default" key
    token = emu.state.add_token(scopes=["org:read", "project:read", "project:write"])
    emu.faults.rate_limit(project.id, seconds=5, categories="span")   # scripted misbehaviour
    ...                                                               # point clients at emu.url
    assert emu.received.spans(project.id)[0].service_name == "checkout-svc"
"""

from sentryroute.emulator.config import EmulatorConfig
from sentryroute.emulator.faults import Faults
from sentryroute.emulator.received import IngestRequest, Received, ReceivedLog, ReceivedSpan
from sentryroute.emulator.server import SentryEmulator
from sentryroute.emulator.state import Key, Org, Project, SlugTaken, State, Team

__all__ = [
    "EmulatorConfig",
    "Faults",
    "IngestRequest",
    "Key",
    "Org",
    "Project",
    "Received",
    "ReceivedLog",
    "ReceivedSpan",
    "SentryEmulator",
    "SlugTaken",
    "State",
    "Team",
]
