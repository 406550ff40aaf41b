"""Turn reconcile results into the routes table (SPEC §3) and write it into its ConfigMap."""
