"""The operator's Sentry side: Web API client, provisioning of one value, ingest endpoints.

`from sentryroute_operator.provision import SentryApi, ensure_project, Provisioned` is all the reconcile
loop needs; the modules are split by question (where is a slug escaped? `paths`; where is a 429 waited?
`ratelimit`; where does the endpoint URL come from? `endpoints`).
"""

from .api import SentryApi
from .endpoints import PREFERRED_KEY_NAME, choose_key, ingest_endpoint
from .errors import (
    AuthError,
    EndpointError,
    InvalidSlug,
    NotFound,
    RateLimited,
    SentryApiError,
    SlugConflict,
    TokenError,
    TransientError,
)
from .models import SentryKey, SentryProject
from .provisioner import DEFINITIVE_FAILURES, ProjectState, Provisioned, Reason, ensure_project
from .tokens import FileToken, Secret, SecretToken, StaticToken, TokenSource

__all__ = [
    "DEFINITIVE_FAILURES",
    "PREFERRED_KEY_NAME",
    "AuthError",
    "EndpointError",
    "FileToken",
    "InvalidSlug",
    "NotFound",
    "ProjectState",
    "Provisioned",
    "RateLimited",
    "Reason",
    "Secret",
    "SecretToken",
    "SentryApi",
    "SentryApiError",
    "SentryKey",
    "SentryProject",
    "SlugConflict",
    "StaticToken",
    "TokenError",
    "TokenSource",
    "TransientError",
    "choose_key",
    "ensure_project",
    "ingest_endpoint",
]
