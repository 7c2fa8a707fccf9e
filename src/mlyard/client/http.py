"""The HTTP layer of the SDK: one httpx client, errors rebuilt into mlyard's typed tree."""

from __future__ import annotations

from typing import Any

import httpx

from mlyard.client.transfers import DEFAULT_TRANSFERS
from mlyard.core.errors import InvalidRequestError, MlyardError, ServerUnavailableError, error_from_dict

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


def raise_for_error(response: httpx.Response) -> None:
    """Turn an error response into the typed error the server raised."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"code": "error", "message": f"HTTP {response.status_code}: {response.text[:200]}"}}
    if not isinstance(body, dict) or "error" not in body:
        body = {"error": {"code": "error", "message": f"HTTP {response.status_code}: {str(body)[:200]}"}}
    raise error_from_dict(body, response.status_code)


class Transport:
    """Sends requests to one server with one token; ``transfers`` files move at once in uploads and downloads."""

    def __init__(self, url: str, token: str | None, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 transfers: int = DEFAULT_TRANSFERS) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidRequestError(f"server URL {url!r} must start with http:// or https://")
        if not 1 <= transfers <= 64:
            raise InvalidRequestError(f"transfers must be between 1 and 64 (MLYARD_TRANSFERS), not {transfers}")
        self.transfers = transfers
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, *, check: bool = True, **kwargs: Any) -> httpx.Response:
        """Send one request; an error answer raises its typed error (with ``check``; a HEAD's 404 never does)."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnavailableError(
                f"cannot reach the mlyard server at {self.url} ({exc.__class__.__name__}: {exc}); "
                "start it with 'mlyard server start' or check MLYARD_URL"
            ) from exc
        if check and (method != "HEAD" or response.status_code != 404):
            raise_for_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def close(self) -> None:
        self.http.close()


__all__ = ["MlyardError", "Transport", "raise_for_error"]
