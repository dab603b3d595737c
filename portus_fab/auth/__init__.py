"""Who is asking and what they get: credentials, scopes, signing keys, tokens."""
