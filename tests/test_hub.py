from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from coldflow import hub
from coldflow.data.mnist import read_idx


@pytest.fixture
def fake_resource(tmp_path, monkeypatch):
    """A resource whose 'official URL' is a local file:// location."""
    payload = b"coldflow test payload\n" * 100
    src = tmp_path / "origin" / "thing.bin"
    src.parent.mkdir()
    src.write_bytes(payload)
    res = hub.Resource(
        name="test-thing",
        kind="weights",
        relpath="test/thing.bin",
        urls=(src.as_uri(),),
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )
    monkeypatch.setitem(hub.RESOURCES, res.name, res)
    monkeypatch.setenv("COLDFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLDFLOW_WEIGHTS", raising=False)
    monkeypatch.delenv("COLDFLOW_DATA", raising=False)
    monkeypatch.delenv("COLDFLOW_OFFLINE", raising=False)
    return res, src, payload


def test_download_verifies_and_caches(fake_resource, tmp_path):
    res, src, payload = fake_resource
    path = hub.resolve(res.name)
    assert path == tmp_path / "cache" / "weights" / "test" / "thing.bin"
    assert path.read_bytes() == payload
    src.unlink()  # the second call must come from the cache
    assert hub.resolve(res.name) == path


def test_offline_missing_file_says_where_to_put_it(fake_resource, monkeypatch):
    res, _, _ = fake_resource
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    with pytest.raises(hub.HubError) as e:
        hub.resolve(res.name)
    assert "thing.bin" in str(e.value) and "put it at" in str(e.value)


def test_offline_message_names_each_searched_folder_once(fake_resource, monkeypatch, tmp_path):
    res, _, _ = fake_resource
    monkeypatch.setenv("COLDFLOW_OFFLINE", "1")
    monkeypatch.setenv("COLDFLOW_DATA", str(tmp_path / "shared"))
    monkeypatch.setenv("COLDFLOW_WEIGHTS", str(tmp_path / "shared" / "weights"))
    with pytest.raises(hub.HubError) as e:
        hub.resolve(res.name)
    searched = str(tmp_path / "shared" / "weights" / "test" / "thing.bin")
    assert str(e.value).count(searched) == 1, str(e.value)


def test_corrupt_download_is_rejected_and_not_cached(fake_resource, tmp_path):
    res, src, payload = fake_resource
    src.write_bytes(payload[:-1] + b"X")
    with pytest.raises(hub.HubError, match="could not download"):
        hub.resolve(res.name)
    assert not (tmp_path / "cache" / "weights" / "test" / "thing.bin").exists()
    assert list((tmp_path / "cache" / "weights" / "test").glob("*")) == []  # no temp left


def test_env_dir_file_with_bad_checksum_is_an_error(fake_resource, tmp_path, monkeypatch):
    res, _, payload = fake_resource
    local = tmp_path / "local"
    (local / "test").mkdir(parents=True)
    (local / "test" / "thing.bin").write_bytes(payload[: len(payload) // 2])
    monkeypatch.setenv("COLDFLOW_WEIGHTS", str(local))
    with pytest.raises(hub.HubError, match="truncated"):
        hub.resolve(res.name)


def test_shared_mnist_files_verify():
    path = hub.resolve("mnist-test-labels")
    labels = read_idx(path)
    assert labels.shape == (10000,)
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_read_idx_rejects_truncated_files(tmp_path):
    good = hub.resolve("mnist-test-labels")
    raw = gzip.decompress(good.read_bytes())
    bad = tmp_path / "short-idx1-ubyte"
    bad.write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(bad)
    worse = tmp_path / "cut.gz"
    worse.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(worse)


def test_read_idx_round_trip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(header + arr.tobytes())
    np.testing.assert_array_equal(read_idx(path), arr)
