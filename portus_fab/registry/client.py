"""The registry HTTP client: one narrowly scoped token per operation, useful errors."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from urllib.parse import urljoin, urlsplit

import requests

from portus_fab.registry.errors import RegistryError, RegistryUnavailable
from portus_fab.registry.manifests import MANIFEST_ACCEPT
from portus_fab.registry.names import validate_digest, validate_repository_name, validate_tag

__all__ = ["RegistryClient", "RegistryError", "RegistryUnavailable"]

log = logging.getLogger(__name__)

# Tokens live at least 60 s and the registry allows 60 s of clock leeway: 60 s of reuse is safe.
TOKEN_CACHE_SECONDS = 60.0
# Image configs are small; anything bigger is not something this client should hold in memory.
MAX_BLOB_BYTES = 16 * 1024 * 1024
# The registry refuses manifests above 4 MiB; leave headroom but stay bounded.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
_MAX_ERROR_BODY = 64 * 1024
_MAX_ERROR_DETAIL = 1000

TokenFor = Callable[[list[str]], str]
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        token_for: TokenFor,
        *,
        timeout: float = 5,
        deadline: float | None = None,
        verify: bool | str = True,
        session: requests.Session | None = None,
    ) -> None:
        """`timeout`: seconds for each connect and each read of an answer. `deadline`: seconds,
        from now, that every request of this client may take together (a page a user waits for);
        None for work in the background, which has no one waiting."""
        self.base_url = base_url.rstrip("/")
        self._token_for = token_for
        self._timeout = timeout
        self._budget = deadline
        self._deadline = None if deadline is None else time.monotonic() + deadline
        self._verify = verify
        self._session = session or requests.Session()
        self._tokens: dict[tuple[str, ...], tuple[float, str]] = {}

    def ping(self) -> None:
        """Check that the registry answers and accepts our tokens."""
        self._request("GET", "/v2/", []).close()

    def catalog(self, page_size: int = 100) -> Iterator[str]:
        """Every repository name, following the registry's `Link: <...>; rel="next"` pages."""
        url: str | None = self._url(f"/v2/_catalog?n={page_size}")
        seen: set[str] = set()
        while url is not None and url not in seen:  # a looping Link must not loop us
            seen.add(url)
            response = self._request("GET", url, ["registry:catalog:*"])
            names = _json(response, url).get("repositories") or []
            if not isinstance(names, list):
                raise RegistryError(
                    f"GET {url}: 'repositories' is not a list", response.status_code
                )
            yield from (name for name in names if isinstance(name, str))
            next_link = response.links.get("next", {}).get("url")
            url = urljoin(url, next_link) if next_link else None

    def tags(self, repository: str) -> list[str]:
        """All tags of `repository` ([] when it has none left); RegistryError 404 if unknown."""
        url = self._url(f"/v2/{_repository(repository)}/tags/list")
        response = self._request("GET", url, [_scope(repository, "pull")])
        tags = _json(response, url).get("tags") or []
        if not isinstance(tags, list):
            raise RegistryError(f"GET {url}: 'tags' is not a list", response.status_code)
        return [tag for tag in tags if isinstance(tag, str)]

    def manifest(self, repository: str, reference: str) -> tuple[str, str, bytes]:
        """(media type, digest, body) of the manifest `reference` (a tag or a digest) points at."""
        if validate_tag(reference) and validate_digest(reference):
            raise ValueError(f"invalid manifest reference {reference!r}")
        url = self._url(f"/v2/{_repository(repository)}/manifests/{reference}")
        response = self._request(
            "GET", url, [_scope(repository, "pull")], headers={"Accept": MANIFEST_ACCEPT}
        )
        body = _read_capped(response, url, MAX_MANIFEST_BYTES, "manifest", self._deadline)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        digest = response.headers.get("Docker-Content-Digest", "").strip()
        if validate_digest(digest) is not None:
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return media_type, digest, body

    def blob(self, repository: str, digest: str) -> bytes:
        """Content of a (small) blob such as an image config; redirects to storage are followed."""
        if error := validate_digest(digest):
            raise ValueError(error)
        url = self._url(f"/v2/{_repository(repository)}/blobs/{digest}")
        response = self._request("GET", url, [_scope(repository, "pull")])
        return _read_capped(response, url, MAX_BLOB_BYTES, "blob", self._deadline)

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest, which removes every tag pointing at it."""
        if error := validate_digest(digest):
            raise ValueError(error)
        url = self._url(f"/v2/{_repository(repository)}/manifests/{digest}")
        try:
            self._request("DELETE", url, [_scope(repository, "delete")]).close()
        except RegistryError as exc:
            if exc.status == 405:
                raise RegistryError(
                    f"DELETE {url} -> HTTP 405: the registry does not allow deletes; "
                    "set storage.delete.enabled: true in its configuration",
                    405,
                    exc.code,
                ) from exc
            raise

    def challenge(self) -> dict[str, str]:
        """The parameters of the registry's `WWW-Authenticate: Bearer ...` challenge for an
        anonymous `GET /v2/` (realm, service): what the registry tells clients about us."""
        url = self._url("/v2/")
        try:
            response = self._session.get(
                url, timeout=self._time_left("GET", url), verify=self._verify
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RegistryUnavailable(f"GET {url}: registry unreachable: {exc}") from exc
        response.close()
        header = response.headers.get("WWW-Authenticate", "")
        scheme, _, params = header.partition(" ")
        if response.status_code != 401 or scheme.lower() != "bearer":
            return {}
        return dict(_CHALLENGE_PARAM_RE.findall(params))

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _time_left(self, method: str, url: str) -> float:
        """The timeout for the next connect or read: the per-request one, cut to what is left
        of the deadline; RegistryUnavailable once the deadline has passed."""
        if self._deadline is None:
            return self._timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RegistryUnavailable(
                f"{method} {url}: not sent, the {self._budget:g} s allowed for the registry "
                "(PORTUS_REGISTRY_DEADLINE) are spent"
            )
        return min(self._timeout, left)

    def _token(self, scopes: tuple[str, ...]) -> tuple[str, bool]:
        """A token for exactly `scopes`, and whether it came from the cache."""
        cached = self._tokens.get(scopes)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1], True
        token = self._token_for(list(scopes))
        self._tokens[scopes] = (now + TOKEN_CACHE_SECONDS, token)
        return token, False

    def _request(
        self,
        method: str,
        path_or_url: str,
        scopes: list[str],
        *,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send with a bearer token; return a streamed 2xx/3xx response, raise on anything else."""
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        # A Link header (or a bug) must never send our token to another host.
        if urlsplit(url)[:2] != urlsplit(self.base_url)[:2]:
            raise RegistryError(f"{method} {url}: refusing to follow a URL off {self.base_url}")
        key = tuple(scopes)
        token, cached = self._token(key)
        response = self._send(method, url, headers, token)
        if response.status_code == 401 and cached:
            # The cached token may predate a signing key change: one retry with a new one.
            response.close()
            self._tokens.pop(key, None)
            response = self._send(method, url, headers, self._token(key)[0])
        if response.status_code >= 400:
            raise _error(method, url, response, self._deadline)
        return response

    def _send(
        self, method: str, url: str, headers: dict[str, str] | None, token: str
    ) -> requests.Response:
        try:
            # Redirects to storage are followed; requests drops Authorization on a host change.
            response = self._session.request(
                method,
                url,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                timeout=self._time_left(method, url),
                verify=self._verify,
                stream=True,
                allow_redirects=True,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RegistryUnavailable(f"{method} {url}: registry unreachable: {exc}") from exc
        except requests.RequestException as exc:
            raise RegistryError(f"{method} {url}: {exc}") from exc
        log.debug("%s %s -> %s", method, url, response.status_code)
        return response


def _repository(repository: str) -> str:
    if error := validate_repository_name(repository):
        raise ValueError(error)
    return repository


def _scope(repository: str, action: str) -> str:
    return f"repository:{repository}:{action}"


def _json(response: requests.Response, url: str) -> dict[str, object]:
    try:
        document = response.json()
    except ValueError as exc:
        raise RegistryError(f"GET {url}: answer is not JSON: {exc}", response.status_code) from exc
    if not isinstance(document, dict):
        raise RegistryError(f"GET {url}: answer is not a JSON object", response.status_code)
    return document


def _read_capped(
    response: requests.Response, url: str, limit: int, what: str, deadline: float | None
) -> bytes:
    """The body, refused above `limit`, or once past `deadline` between chunks (a steady trickle
    never trips the read timeout). Errors name `url`, never a redirect's signed URL."""
    with response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RegistryError(
                f"GET {url}: {what} of {declared} bytes exceeds the {limit} byte limit",
                response.status_code,
            )
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(64 * 1024):
                if _past(deadline):
                    raise RegistryUnavailable(f"GET {url}: the {what} came too slowly")
                total += len(chunk)
                if total > limit:
                    raise RegistryError(
                        f"GET {url}: {what} exceeds the {limit} byte limit",
                        response.status_code,
                    )
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"GET {url}: reading the {what} failed: {exc}") from exc
        return b"".join(chunks)


def _error(
    method: str, url: str, response: requests.Response, deadline: float | None
) -> RegistryError:
    """An error that tells an admin what was asked, what came back and why."""
    status = response.status_code
    code: str | None = None
    detail = ""
    with response:
        raw = _read_prefix(response, _MAX_ERROR_BODY, deadline)
    try:
        errors = json.loads(raw).get("errors")
    except (ValueError, AttributeError, RecursionError):
        errors = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = first["code"] if isinstance(first.get("code"), str) else None
        detail = (
            ": "
            + ", ".join(
                f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)
            )[:_MAX_ERROR_DETAIL]
        )
    if status == 401 and "WWW-Authenticate" in response.headers:
        detail += f" ({response.headers['WWW-Authenticate']})"
    message = f"{method} {url} -> HTTP {status} {response.reason or ''}".rstrip() + detail
    if status >= 500 or status == 429:
        return RegistryUnavailable(message, status, code)
    return RegistryError(message, status, code)


def _read_prefix(response: requests.Response, limit: int, deadline: float | None) -> bytes:
    """At most about `limit` bytes of an error body; a broken connection or the deadline just
    ends it."""
    data = b""
    try:
        for chunk in response.iter_content(8192):
            data += chunk
            if len(data) >= limit or _past(deadline):
                break
    except requests.RequestException:
        pass
    return data[:limit]


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
