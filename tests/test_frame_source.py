import os
import pickle
import time

import pytest

from training.frame_source import FrameError, FrameFetcher, FrameSourceConfig, redact_url

KEY = "0123456789abcdef0123456789abcdef01234567"


def serve(body: bytes, status=200, headers=None, delay_s=0.0):
    def route(method, req_headers, req_body):
        time.sleep(delay_s)
        return status, dict(headers or {}), body

    return route


@pytest.fixture
def root(tmp_path):
    """document_root with one frame, plus a secret file next to (outside) it."""
    doc = tmp_path / "root"
    (doc / "rec1").mkdir(parents=True)
    (doc / "rec1" / "00.jpg").write_bytes(b"frame-00")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    return doc


@pytest.fixture
def ls(local_server):
    """A fake Label Studio serving /data/upload/1/a.png."""
    local_server.routes["/data/upload/1/a.png"] = serve(b"uploaded")
    return local_server


def test_local_files_from_document_root(root):
    fetcher = FrameFetcher(FrameSourceConfig(document_root=str(root)))
    assert fetcher.fetch("/data/local-files/?d=rec1/00.jpg") == b"frame-00"
    assert fetcher.fetch("/data/local-files/?d=rec1%2F00.jpg") == b"frame-00"
    assert fetcher.fetch("rec1/00.jpg") == b"frame-00"  # relative plain path
    assert fetcher.fetch(str(root / "rec1" / "00.jpg")) == b"frame-00"
    assert fetcher.fetch((root / "rec1" / "00.jpg").as_uri()) == b"frame-00"
    with pytest.raises(FrameError, match="file not found"):
        fetcher.fetch("/data/local-files/?d=rec1/99.jpg")


@pytest.mark.parametrize("ref", [
    "/data/local-files/?d=../secret.txt",
    "/data/local-files/?d=rec1/../../secret.txt",
    "../secret.txt",
])
def test_paths_escaping_the_root_are_refused(root, ref):
    with pytest.raises(FrameError, match="outside the document root"):
        FrameFetcher(FrameSourceConfig(document_root=str(root))).fetch(ref)


def test_absolute_paths_outside_roots_are_refused(root, tmp_path):
    fetcher = FrameFetcher(FrameSourceConfig(document_root=str(root)))
    with pytest.raises(FrameError, match="relative path in \\?d="):
        fetcher.fetch("/data/local-files/?d=" + str(tmp_path / "secret.txt"))
    with pytest.raises(FrameError, match="no label_studio_url"):
        fetcher.fetch(str(tmp_path / "secret.txt"))
    with pytest.raises(FrameError, match="outside"):
        fetcher.fetch((tmp_path / "secret.txt").as_uri())
    allowed = FrameFetcher(FrameSourceConfig(document_root=str(root), allowed_roots=(str(tmp_path),)))
    assert allowed.fetch(str(tmp_path / "secret.txt")) == b"secret"


def test_symlinks_out_of_the_root_are_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "rec1" / "link.jpg")
    os.symlink(root / "rec1" / "00.jpg", root / "inside.jpg")
    fetcher = FrameFetcher(FrameSourceConfig(document_root=str(root)))
    with pytest.raises(FrameError, match="outside"):
        fetcher.fetch("/data/local-files/?d=rec1/link.jpg")
    with pytest.raises(FrameError, match="outside"):
        fetcher.fetch(str(root / "rec1" / "link.jpg"))
    assert fetcher.fetch("/data/local-files/?d=inside.jpg") == b"frame-00"


def test_upload_url_fetched_from_label_studio_with_auth(ls):
    fetcher = FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, api_key=KEY))
    assert fetcher.fetch("/data/upload/1/a.png") == b"uploaded"
    assert fetcher.fetch(ls.url + "/data/upload/1/a.png") == b"uploaded"
    assert all(h.get("Authorization") == f"Token {KEY}" for _, _, h, _ in ls.requests)


def test_local_files_without_document_root_go_to_label_studio(ls):
    ls.routes["/data/local-files/"] = serve(b"served-by-ls")
    fetcher = FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, api_key=KEY))
    assert fetcher.fetch("/data/local-files/?d=rec1/00.jpg") == b"served-by-ls"
    assert ls.requests[-1][1] == "/data/local-files/?d=rec1/00.jpg"


@pytest.mark.parametrize("status,match", [(404, "HTTP 404 .*local-files storage"), (401, "HTTP 401 .*API key")])
def test_http_errors(ls, status, match):
    ls.routes["/data/upload/1/b.png"] = serve(b"no", status=status)
    with pytest.raises(FrameError, match=match) as info:
        FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, api_key=KEY)).fetch("/data/upload/1/b.png")
    assert KEY not in str(info.value)


def test_oversize_refused_by_header_and_while_streaming(ls):
    ls.routes["/big.png"] = serve(b"x" * 5000)
    ls.routes["/big-unannounced.png"] = serve(b"x" * 300_000, headers={"Content-Length": None})
    fetcher = FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, max_bytes=1000))
    with pytest.raises(FrameError, match="5000 bytes, above max_bytes=1000"):
        fetcher.fetch("/big.png")
    with pytest.raises(FrameError, match="exceeds max_bytes=1000"):
        fetcher.fetch("/big-unannounced.png")


def test_oversize_local_file(root):
    (root / "big.jpg").write_bytes(b"x" * 2000)
    with pytest.raises(FrameError, match="above max_bytes"):
        FrameFetcher(FrameSourceConfig(document_root=str(root), max_bytes=1000)).fetch("big.jpg")


def test_other_hosts_need_allowed_hosts_and_never_get_auth(ls, local_server_factory):
    other = local_server_factory()
    other.routes["/f.png"] = serve(b"elsewhere")
    url = other.url + "/f.png"
    with pytest.raises(FrameError, match="neither the Label Studio host nor in allowed_hosts"):
        FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, api_key=KEY)).fetch(url)
    assert other.requests == []
    for allowed in (("127.0.0.1",), ("*",)):
        cfg = FrameSourceConfig(label_studio_url=ls.url, api_key=KEY, allowed_hosts=allowed)
        assert FrameFetcher(cfg).fetch(url) == b"elsewhere"
    assert all("Authorization" not in h for _, _, h, _ in other.requests)


def test_redirects_are_checked_per_hop(ls, local_server_factory):
    other = local_server_factory()
    other.routes["/f.png"] = serve(b"redirected")
    ls.routes["/tasks/1/resolve"] = serve(b"", status=302, headers={"Location": other.url + "/f.png"})
    with pytest.raises(FrameError, match="allowed_hosts"):
        FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, api_key=KEY)).fetch("/tasks/1/resolve")
    cfg = FrameSourceConfig(label_studio_url=ls.url, api_key=KEY, allowed_hosts=("*",))
    assert FrameFetcher(cfg).fetch("/tasks/1/resolve") == b"redirected"
    assert "Authorization" not in other.requests[-1][2]


def test_timeout(ls):
    ls.routes["/slow.png"] = serve(b"late", delay_s=0.6)
    with pytest.raises(FrameError, match="timed out"):
        FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, timeout_s=0.2)).fetch("/slow.png")


def test_cache_hit_survives_fetchers_and_writes_atomically(ls, tmp_path):
    cfg = FrameSourceConfig(label_studio_url=ls.url, api_key=KEY, cache_dir=str(tmp_path / "cache"))
    assert FrameFetcher(cfg).fetch("/data/upload/1/a.png") == b"uploaded"
    assert FrameFetcher(cfg).fetch("/data/upload/1/a.png") == b"uploaded"
    assert len(ls.requests) == 1
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].endswith(".bin")  # no temp files left behind


def test_cache_evicts_least_recently_used(ls, tmp_path):
    for name in "abc":
        ls.routes[f"/{name}.png"] = serve(name.encode() * 100)
    fetcher = FrameFetcher(FrameSourceConfig(label_studio_url=ls.url, cache_dir=str(tmp_path / "c"), cache_max_bytes=250))
    for ref in ("/a.png", "/b.png", "/a.png", "/c.png"):  # a is used again after b: b is the oldest
        fetcher.fetch(ref)
        time.sleep(0.02)
    assert len(ls.requests) == 3
    fetcher.fetch("/a.png")
    assert len(ls.requests) == 3  # a still cached
    fetcher.fetch("/b.png")
    assert len(ls.requests) == 4  # b was evicted
    assert sum(p.stat().st_size for p in (tmp_path / "c").iterdir()) <= 250


def test_unsupported_and_unconfigured_refs(tmp_path):
    fetcher = FrameFetcher(FrameSourceConfig())
    with pytest.raises(FrameError, match="unsupported URL scheme 's3'"):
        fetcher.fetch("s3://bucket/a.png")
    with pytest.raises(FrameError, match="no label_studio_url"):
        fetcher.fetch("/data/upload/1/a.png")
    with pytest.raises(FrameError, match="no document_root"):
        fetcher.fetch("rec1/00.jpg")
    with pytest.raises(FrameError, match="non-empty string"):
        fetcher.fetch("")


def test_messages_and_reprs_hide_secrets(ls):
    cfg = FrameSourceConfig(label_studio_url=ls.url, api_key=KEY)
    assert KEY not in repr(cfg) and KEY not in repr(FrameFetcher(cfg))
    with pytest.raises(FrameError) as info:
        FrameFetcher(cfg).fetch("https://storage.example/a.png?X-Amz-Signature=s3cr3t&token=t0k&page=2")
    assert "s3cr3t" not in str(info.value) and "t0k" not in str(info.value) and "page=2" in str(info.value)
    assert redact_url("/data/local-files/?d=a/b.jpg") == "/data/local-files/?d=a/b.jpg"
    copy = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries (worker queues)
    assert str(copy) == str(info.value) and copy.reason == info.value.reason
