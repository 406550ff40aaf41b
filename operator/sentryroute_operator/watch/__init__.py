"""What the operator watches: SentryRoutes, Pods and their owners (kopf handlers and indexes)."""
