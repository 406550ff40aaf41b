"""`--namespace-from peer` (SPEC §6.1): which pod sent a request, from the connection's peer address."""
