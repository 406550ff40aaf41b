"""The report channel (SPEC §4): held values are reported to the operator through a ConfigMap."""
