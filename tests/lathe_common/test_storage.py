"""Both artifact stores keep bytes intact; the S3 one talks to a real S3-protocol server."""

from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lathe_common.embedded_redis import free_port
from lathe_common.web.storage import LocalStore, S3Store


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lathe")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lathe-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _roundtrip(store, tmp_path: Path) -> None:
    source = tmp_path / "upload"
    source.write_bytes(b'\xef\xbb\xbf{"instruction": "hi"}\r\n' * 1000)
    store.put(source, "blobs/ab/abcdef", move=False)
    assert store.exists("blobs/ab/abcdef")
    assert not store.exists("blobs/ab/missing")
    assert store.size("blobs/ab/abcdef") == source.stat().st_size
    with store.open("blobs/ab/abcdef") as handle:
        assert handle.read() == source.read_bytes()
    assert store.local_path("blobs/ab/abcdef").read_bytes() == source.read_bytes()


def test_it_keeps_files_on_local_disk(tmp_path):
    _roundtrip(LocalStore(tmp_path / "store"), tmp_path)


def test_it_refuses_keys_that_climb_out_of_the_store(tmp_path):
    store = LocalStore(tmp_path / "store")
    for key in ("../escape", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(ValueError):
            store.local_path(key)


def test_it_keeps_files_in_s3_compatible_storage(tmp_path, s3_endpoint, s3_credentials):
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="lathe-artifacts")
    store = S3Store("lathe-artifacts", "prod/", s3_endpoint, tmp_path / "cache")
    _roundtrip(store, tmp_path)
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="lathe-artifacts")
    assert [item["Key"] for item in listed["Contents"]] == ["prod/blobs/ab/abcdef"]
    # Another machine with an empty cache reads the object back from the bucket.
    fresh = S3Store("lathe-artifacts", "prod/", s3_endpoint, tmp_path / "other-cache")
    assert fresh.exists("blobs/ab/abcdef")
    assert fresh.local_path("blobs/ab/abcdef").read_bytes() == (tmp_path / "upload").read_bytes()
