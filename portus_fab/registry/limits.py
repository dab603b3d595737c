"""How long each value the registry sends may be: the one definition shared by the parser that
judges events (notifications.py, names.py) and the columns that store them (models/).

An event with a value over its limit is rejected (recorded with the reason) instead of stored:
on PostgreSQL a value longer than its column fails the whole statement, that is the whole
envelope, and the registry retries an envelope it could not deliver forever.
"""

from __future__ import annotations

# The registry's reference grammar (distribution/reference): names of at most 255 characters,
# tags of at most 128.
REPOSITORY_NAME_MAX = 255
TAG_MAX = 128
# "algorithm:hex". go-digest bounds neither part; sha512 takes 135, the rest is for algorithms
# to come.
DIGEST_MAX = 255
# RFC 6838: a type and a subtype of at most 127 characters each, and the "/".
MEDIA_TYPE_MAX = 255
# Registries send UUIDs (36 characters); any id up to this is stored and deduplicated on.
EVENT_ID_MAX = 255
# The longest word read as an action (only push, pull and delete are stored).
ACTION_MAX = 16
# The actor is the subject of a token this project issued: a FAB username, String(128).
ACTOR_MAX = 128
