"""Fetch frame bytes for the frame references found in Label Studio task data.

Reference kinds (``FrameFetcher.fetch``):
- ``/data/local-files/?d=<path>``: read ``document_root/<path>`` when ``document_root`` is set
  (paths escaping the root, by ``..``, absolute paths or symlinks, are refused); otherwise fetched
  from Label Studio, which serves it when the project has a local-files storage.
- ``/data/upload/...`` and other relative URLs: fetched from ``label_studio_url``.
- ``http(s)://`` URLs: fetched. The Label Studio Authorization header is only ever sent to the
  Label Studio host; other hosts must be listed in ``allowed_hosts`` (``"*"`` allows any host,
  e.g. for pre-signed cloud-storage URLs). Redirects are followed by hand so each hop is checked.
- plain file paths (and ``file://``): only inside ``document_root`` or one of ``allowed_roots``.

Downloads are bounded (``timeout_s`` in total: connect, headers and every body read share one
deadline; the body is read one socket read at a time with the socket's timeout set to the time
left, so a host that trickles bytes cannot outlast it; ``max_bytes`` streamed) and
cached on disk by sha256 of the URL (frames are treated as immutable), with a total size cap
that evicts the least recently used files; cache writes are atomic (temp file + rename).
Errors are FrameError(ref, reason); neither tokens, URL user-info nor token-like query values
reach messages.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

import requests
import urllib3

from training.atomic_write import write_bytes_atomic
from training.ls_auth import LabelStudioAuth, same_origin

LOCAL_FILES_PREFIX = "/data/local-files/"
MAX_REDIRECTS = 5
_SECRET_PARAM = re.compile(r"token|key|sig|signature|credential|password|auth|secret", re.I)


@dataclass(frozen=True)
class FrameSourceConfig:
    label_studio_url: str | None = None  # base for relative URLs; the only host that gets auth headers
    api_key: str | None = field(default=None, repr=False)  # legacy token or personal access token
    document_root: str | None = None  # LOCAL_FILES_DOCUMENT_ROOT: serve /data/local-files/ from disk
    cache_dir: str | None = None  # None: no download cache
    cache_max_bytes: int = 1 << 30  # 1 GiB; least recently used files are evicted beyond it
    timeout_s: float = 10.0  # connect/read timeout and total time per download
    max_bytes: int = 32 << 20  # 32 MiB; larger frames are refused
    allowed_hosts: tuple[str, ...] = ()  # hosts besides Label Studio that http(s) frames may come from; "*" = any
    allowed_roots: tuple[str, ...] = ()  # folders besides document_root that plain paths may come from


class FrameError(Exception):
    """A frame could not be fetched; ``reason`` says why. The message never contains tokens."""

    def __init__(self, ref: str, reason: str):
        self.ref = redact_url(ref)
        self.reason = reason
        super().__init__(self.ref, reason)  # args that rebuild it: picklable across processes

    def __str__(self) -> str:
        return f"frame {self.ref!r}: {self.reason}"


def redact_url(url: str) -> str:
    """``url`` with user-info (``user:password@``) and token-like query values (token, key,
    signature, ...) replaced by ``<redacted>``; a URL that does not parse is redacted whole."""
    try:
        parts = urlsplit(str(url))
    except ValueError:  # e.g. "http://[bad": it cannot be split, so nothing of it can be shown safely
        return "<malformed URL>"
    if "@" in parts.netloc:
        parts = parts._replace(netloc="<redacted>@" + parts.netloc.rsplit("@", 1)[1])
    if parts.query:
        query = [(k, "<redacted>" if _SECRET_PARAM.search(k) else v)
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(query, safe="/<>"))
    return urlunsplit(parts)


def ref_problem(ref: str) -> str | None:
    """Why a frame reference can never be fetched (NUL, lone surrogate, unparsable URL), or None."""
    if "\x00" in ref:
        return "contains a NUL character"
    try:
        ref.encode("utf-8")
    except UnicodeError:
        return "is not valid Unicode (lone surrogate)"
    try:
        urlsplit(ref).port  # noqa: B018 ('http://[bad', 'host:99999' and 'host:x' raise ValueError)
    except ValueError:
        return "is a malformed URL"
    return None


def host_label(url: str) -> str:
    """host[:port] of ``url`` for messages: never the user-info of its netloc."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def allowed_hosts_from_env(env=None) -> tuple[str, ...]:
    """ALLOWED_FRAME_HOSTS (comma-separated), as the backend reads it: the training CLIs that an
    active-learning job runs fetch the same frames the backend predicts on."""
    raw = (os.environ if env is None else env).get("ALLOWED_FRAME_HOSTS") or ""
    return tuple(h.strip().lower() for h in raw.split(",") if h.strip())


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


class FrameFetcher:
    """Turns frame references into bytes. Safe to share between threads."""

    def __init__(self, cfg: FrameSourceConfig):
        self.cfg = cfg
        self._auth = LabelStudioAuth(cfg.label_studio_url, cfg.api_key) if cfg.label_studio_url and cfg.api_key else None
        roots = [r for r in (cfg.document_root, *cfg.allowed_roots) if r]
        self._roots = [os.path.realpath(r) for r in roots]
        self._lexical_roots = [os.path.abspath(r) for r in roots] + self._roots  # to recognise plain paths
        self._cache = _DiskCache(Path(cfg.cache_dir), cfg.cache_max_bytes) if cfg.cache_dir else None
        self._local = threading.local()  # one requests.Session per thread

    def __repr__(self) -> str:
        return f"FrameFetcher({self.cfg!r})"

    def fetch(self, ref: str) -> bytes:
        if not isinstance(ref, str) or not ref:
            raise FrameError(repr(ref), "a frame reference must be a non-empty string")
        kind, target = self.resolve(ref)
        if kind == "file":
            return self._read_file(ref, target)
        if self._cache is not None and (hit := self._cache.get(target)) is not None:
            return hit
        data = self._download(ref, target)
        if self._cache is not None:
            self._cache.put(target, data)
        return data

    def host_of(self, ref: str) -> str | None:
        """The host[:port] ``ref`` is downloaded from; None for a local file or an unusable reference."""
        try:
            kind, target = self.resolve(ref)
        except FrameError:
            return None
        return host_label(target) if kind == "url" else None

    def resolve(self, ref: str) -> tuple[str, str]:
        """("file", real path) or ("url", absolute URL); FrameError for a reference that cannot be used."""
        problem = ref_problem(ref)
        if problem:
            raise FrameError(ref, problem)
        parts = urlsplit(ref)
        if parts.scheme in ("http", "https"):
            return "url", ref
        if parts.scheme == "file":
            return "file", self._check_path(ref, unquote(parts.path), self._roots)
        if parts.scheme:
            raise FrameError(ref, f"unsupported URL scheme {parts.scheme!r}")
        if ref.startswith(LOCAL_FILES_PREFIX) and self.cfg.document_root:
            rel = parse_qs(parts.query).get("d", [""])[0]
            if not rel or os.path.isabs(rel):
                raise FrameError(ref, "local-files URL needs a relative path in ?d=")
            root = os.path.realpath(self.cfg.document_root)
            return "file", self._check_path(ref, os.path.join(root, rel), [root])
        if ref.startswith("/") and any(_inside(os.path.abspath(ref), r) for r in self._lexical_roots):
            return "file", self._check_path(ref, ref, self._roots)
        if ref.startswith("/"):
            if not self.cfg.label_studio_url:
                raise FrameError(ref, "relative URL, but no label_studio_url is configured (and not a file in an allowed root)")
            return "url", urljoin(self.cfg.label_studio_url.rstrip("/") + "/", ref)
        if not self.cfg.document_root:
            raise FrameError(ref, "relative file path, but no document_root is configured")
        return "file", self._check_path(ref, os.path.join(self.cfg.document_root, ref), self._roots)

    @staticmethod
    def _check_path(ref: str, path: str, roots: list[str]) -> str:
        real = os.path.realpath(path)  # resolves '..' and symlinks before the containment check
        if not any(_inside(real, root) for root in roots):
            raise FrameError(ref, "path is outside the document root / allowed roots")
        return real

    def _read_file(self, ref: str, path: str) -> bytes:
        try:
            size = os.stat(path).st_size
            if not os.path.isfile(path):
                raise FrameError(ref, "not a regular file")
            if size > self.cfg.max_bytes:
                raise FrameError(ref, f"file is {size} bytes, above max_bytes={self.cfg.max_bytes}")
            with open(path, "rb") as f:
                return f.read(self.cfg.max_bytes + 1)
        except FileNotFoundError:
            raise FrameError(ref, "file not found") from None
        except OSError as exc:
            raise FrameError(ref, f"cannot read file ({exc.strerror or type(exc).__name__})") from None

    def _headers_for(self, ref: str, url: str) -> dict[str, str]:
        host = urlsplit(url).hostname or ""
        if self.cfg.label_studio_url and same_origin(url, self.cfg.label_studio_url):
            return self._auth.headers() if self._auth else {}
        if "*" in self.cfg.allowed_hosts or host.lower() in {h.lower() for h in self.cfg.allowed_hosts}:
            return {}
        raise FrameError(ref, f"host {host!r} is neither the Label Studio host nor in allowed_hosts")

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _download(self, ref: str, url: str) -> bytes:
        deadline = time.monotonic() + self.cfg.timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            headers = self._headers_for(ref, url)
            host = host_label(url)
            timed_out = FrameError(ref, f"timed out after {self.cfg.timeout_s} s ({host})")
            try:
                left = _time_left(deadline, timed_out)
                with self._session().get(url, headers=headers, timeout=(left, left), stream=True,
                                         allow_redirects=False) as resp:
                    if resp.is_redirect:
                        url = urljoin(url, resp.headers["Location"])
                        continue
                    if resp.status_code != 200:
                        raise FrameError(ref, f"HTTP {resp.status_code} from {host}{_status_hint(resp.status_code)}")
                    return self._read_body(ref, resp, deadline, timed_out)
            except (requests.Timeout, urllib3.exceptions.TimeoutError):
                raise timed_out from None
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise timed_out from None
                raise FrameError(ref, f"request to {host} failed ({type(exc).__name__})") from None
        raise FrameError(ref, f"more than {MAX_REDIRECTS} redirects")

    def _read_body(self, ref: str, resp: requests.Response, deadline: float, timed_out: FrameError) -> bytes:
        limit = self.cfg.max_bytes
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FrameError(ref, f"response is {declared} bytes, above max_bytes={limit}")
        raw, chunks, total = resp.raw, [], 0
        while True:
            _set_read_timeout(raw, _time_left(deadline, timed_out))
            chunk = raw.read1(64 * 1024, decode_content=True)  # returns after ONE socket read
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise FrameError(ref, f"response exceeds max_bytes={limit}")
            chunks.append(chunk)


def _time_left(deadline: float, timed_out: FrameError) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out
    return left


def _set_read_timeout(raw: urllib3.HTTPResponse, seconds: float) -> None:
    """The next socket read of this response waits at most `seconds` (the time left to the deadline)."""
    sock = getattr(raw.connection, "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return " (check the Label Studio API key / its permissions)"
    if status == 404:
        return " (for /data/local-files/ the project needs a local-files storage, or set document_root)"
    return ""


class _DiskCache:
    """Files named by sha256(URL) in one folder; total size capped, least recently used evicted."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, url: str) -> Path:
        return self.folder / (hashlib.sha256(url.encode("utf-8")).hexdigest() + ".bin")

    def get(self, url: str) -> bytes | None:
        path = self._path(url)
        try:
            data = path.read_bytes()
            os.utime(path)  # mark as recently used
        except FileNotFoundError:  # absent, or evicted by another process meanwhile
            return None
        return data

    def put(self, url: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        write_bytes_atomic(self._path(url), data, fsync=False)
        self._evict()

    def _evict(self) -> None:
        with self._lock:
            entries = []
            for path in self.folder.glob("*.bin"):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                entries.append((st.st_mtime, st.st_size, path))
            total = sum(size for _, size, _ in entries)
            for _, size, path in sorted(entries):
                if total <= self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
