"""URLs made safe to print: credentials live in a URL's userinfo, its query and sometimes its path.

A webhook URL such as ``https://hooks.example.com/services/T0/B0/XXXX?token=...`` is a secret as a
whole, and ``requests``/``urllib3`` quote the URL (or its path and query) in their error messages. So
nothing that may carry a URL is printed as it is: messages go through :func:`redact_urls`, and a URL
we know to be secret is shown only as its origin (:func:`url_origin`) and scrubbed from any text
(:func:`scrub`).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, unquote, unquote_plus, urlsplit

HIDDEN = "…"
TOKEN_SEGMENT = 12  # path segments this long or longer are hidden wherever they appear
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>()\[\]{}]+")
# urllib3: "Max retries exceeded with url: /path?query (Caused by ...)"
_URLLIB3_URL = re.compile(r"(\burl: )(\S+)")


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: no userinfo, path, query or fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if not parts.scheme or not parts.hostname:
        return "(an invalid URL)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def redact_url(url: str) -> str:
    """The URL with its userinfo, query and fragment replaced by ``…`` (scheme, host, port and path
    kept: a path of a Cloud Run URL says what was requested)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = HIDDEN + "@" + netloc.rsplit("@", 1)[1]
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    if parts.query:
        shown += "?" + HIDDEN
    if parts.fragment:
        shown += "#" + HIDDEN
    return shown


def redact_urls(text: str) -> str:
    """Every URL in ``text`` through :func:`redact_url`, and urllib3's ``url: /path?query`` form."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _URLLIB3_URL.sub(lambda m: m.group(1) + _redact_path(m.group(2)), text)


def _redact_path(path: str) -> str:
    return path.split("?", 1)[0] + ("?" + HIDDEN if "?" in path else "")


def scrub(text: str, secret_url: str) -> str:
    """``text`` without any part of ``secret_url`` beyond its origin (the URL, its path, query,
    userinfo, fragment), then with every other URL redacted."""
    try:
        parts = urlsplit(secret_url)
        pieces = [secret_url, parts.path, parts.query, parts.fragment]
        if parts.query:
            pieces.append(f"{parts.path}?{parts.query}")
        if "@" in parts.netloc:
            pieces.append(parts.netloc.rsplit("@", 1)[0])
        # A long path segment is a token (``/services/T0/B0/XXXX``): it may come back on its own.
        pieces += [seg for seg in parts.path.split("/") if len(unquote(seg)) >= TOKEN_SEGMENT]
    except ValueError:
        pieces = [secret_url]
    origin = url_origin(secret_url)
    found = {v: origin if p == secret_url else HIDDEN for p in pieces for v in encodings(p)}
    for piece in sorted((p for p in found if p not in ("/", origin)), key=len, reverse=True):
        text = text.replace(piece, found[piece])
    return redact_urls(text)


def encodings(piece: str) -> set[str]:
    """The forms a piece of a URL can come back in: as written, percent-decoded (a server echoing the
    path it routed: ``%2B`` -> ``+``), form-decoded (``+`` -> space), percent-encoded (a client quoting
    it again), and base64 (an ``Authorization: Basic`` header, a token passed on encoded)."""
    if not piece:
        return set()
    raw = piece.encode()
    forms = {
        piece,
        unquote(piece),
        unquote_plus(piece),
        quote(piece, safe="/"),
        quote(piece, safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
    }
    forms |= {f.rstrip("=") for f in forms if f.endswith("=") and len(f.rstrip("=")) >= 8}
    return {f for f in forms if f}
