"""Helpers for end-to-end tests: real processes, OCI layouts, a skopeo wrapper."""
