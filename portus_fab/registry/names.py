"""Registry name grammar: repositories, tags and digests, plus namespace helpers."""

from __future__ import annotations

import re
import unicodedata

from portus_fab.registry.limits import DIGEST_MAX, REPOSITORY_NAME_MAX, TAG_MAX

# One path component of a repository name, as the registry's reference grammar defines it.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(_COMPONENT)
REPOSITORY_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")

# re.ASCII: the registry's \w is [A-Za-z0-9_], Python's would admit any Unicode letter.
TAG_RE = re.compile(rf"[\w][\w.-]{{0,{TAG_MAX - 1}}}", re.ASCII)

# algorithm ":" hex, as go-digest accepts it; known algorithms also get their exact length checked.
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-f0-9]{32,}")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

NAMESPACE_MAX = 200
_SEPARATOR_RUN_RE = re.compile(r"[._-]+")


def validate_repository_name(name: object) -> str | None:
    """Return why `name` is not a valid repository name, or None if it is."""
    if not isinstance(name, str):
        return f"repository name must be a string, not {type(name).__name__}"
    if not name:
        return "repository name is empty"
    if len(name) > REPOSITORY_NAME_MAX:
        return f"repository name is {len(name)} characters long, at most {REPOSITORY_NAME_MAX}"
    for component in name.split("/"):
        if not _COMPONENT_RE.fullmatch(component):
            return (
                f"repository name component {component!r} is invalid: lowercase letters and "
                "digits, separated by '.', '_', '__' or dashes"
            )
    return None


def validate_tag(tag: object) -> str | None:
    """Return why `tag` is not a valid tag, or None if it is."""
    if not isinstance(tag, str):
        return f"tag must be a string, not {type(tag).__name__}"
    if len(tag) > TAG_MAX:
        return f"tag is {len(tag)} characters long, at most {TAG_MAX}"
    if not TAG_RE.fullmatch(tag):
        return f"tag {tag!r} is invalid: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,{TAG_MAX - 1}}}"
    return None


def validate_digest(digest: object) -> str | None:
    """Return why `digest` is not a valid `algorithm:hex` digest, or None if it is."""
    if not isinstance(digest, str):
        return f"digest must be a string, not {type(digest).__name__}"
    if len(digest) > DIGEST_MAX:
        return f"digest is {len(digest)} characters long, at most {DIGEST_MAX}"
    if not DIGEST_RE.fullmatch(digest):
        return f"digest {digest[:200]!r} is not of the form algorithm:lowercase-hex"
    algorithm, _, hex_part = digest.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is not None and len(hex_part) != expected:
        return f"{algorithm} digest must have {expected} hex digits, not {len(hex_part)}"
    return None


def is_registry_host(component: str) -> bool:
    """Whether docker reads `component`, the first of a reference's path components, as a
    registry host rather than a namespace: it holds '.' or ':', is 'localhost', or is not all
    lowercase (distribution/reference, `splitDockerDomain`). The token service strips such a
    component from scopes, so no namespace may ever be named like one."""
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.lower() != component
    )


def split_registry_host(name: str) -> tuple[str | None, str]:
    """(host, path) of a reference name as docker splits it; host None when the name has none.

    Only a first component followed by '/' can be a host: a lone `localhost` is a repository.
    """
    head, sep, rest = name.partition("/")
    if sep and is_registry_host(head):
        return head, rest
    return None, name


def namespace_of(repository: str) -> str | None:
    """First path segment of `repository`; None for a global repository without '/'."""
    head, sep, _ = repository.partition("/")
    return head if sep else None


def slugify_namespace(username: str) -> str:
    """Turn any username into one valid repository name component (clashes are not handled)."""
    # Fold accents first so 'José' becomes 'jose' rather than 'jos-'.
    folded = unicodedata.normalize("NFKD", username)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower()
    mapped = "".join(ch if ch in "abcdefghijklmnopqrstuvwxyz0123456789._" else "-" for ch in folded)
    slug = _SEPARATOR_RUN_RE.sub(_collapse_separators, mapped).strip("._-")
    slug = slug[:NAMESPACE_MAX].rstrip("._-")
    return slug or "user"


def _collapse_separators(match: re.Match[str]) -> str:
    run = match.group()
    # Keep the separators the grammar allows as they are; anything else becomes a single dash.
    return run if run in (".", "_", "__") else "-"
