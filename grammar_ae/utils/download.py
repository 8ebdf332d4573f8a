"""The user cache directory and checksum-verified downloads into it."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from grammar_ae.errors import DataError
from grammar_ae.utils.files import atomic_path

CACHE_ENV = "GRAMMAR_AE_CACHE"
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """A public file and the sha256 its bytes must have.

    ``sha256`` is None only where the publisher gives no checksum; the caller then records
    the digest of what it got, so results name the exact bytes they used.
    """

    name: str
    url: str
    sha256: str | None


def cache_root() -> Path:
    """``$GRAMMAR_AE_CACHE``, else ``~/.cache/grammar-ae``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "grammar-ae"


def download(remote: RemoteFile, directory: Path) -> Path:
    """Fetch ``remote`` into ``directory``, verify its sha256, and only then give it its name."""
    target = directory / remote.name
    digest = hashlib.sha256()
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(remote.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            with open(tmp, "wb") as handle:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    handle.write(chunk)
            if remote.sha256 is not None and digest.hexdigest() != remote.sha256:
                raise DataError(
                    f"{remote.url}: downloaded file has sha256 {digest.hexdigest()}, expected {remote.sha256}"
                )
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{remote.url}: download failed ({exc})") from exc
    return target
