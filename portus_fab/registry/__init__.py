"""Talking to the registry: HTTP client, notification parser, manifest interpretation."""
