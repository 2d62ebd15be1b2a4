from __future__ import annotations

import os
import threading

import pytest

from livedigits.state.storage import LocalStorage, StorageError, open_storage


def test_create_is_create_only(tmp_path):
    store = LocalStorage(tmp_path)
    assert store.create("log/0001.json", b"first")
    assert not store.create("log/0001.json", b"second")
    assert store.get("log/0001.json") == b"first"


def test_put_get_list(tmp_path):
    store = LocalStorage(tmp_path)
    for n in (3, 1, 2):
        store.put(f"log/{n:04d}.json", str(n).encode())
    assert store.list("log/") == ["log/0001.json", "log/0002.json", "log/0003.json"]
    assert store.list("log/", start_after="log/0001.json") == ["log/0002.json", "log/0003.json"]
    assert store.list("nothing/") == []
    with pytest.raises(KeyError):
        store.get("log/0009.json")
    assert not os.listdir(tmp_path / ".incoming")  # no temp files left behind


def test_concurrent_creates_have_one_winner(tmp_path):
    store = LocalStorage(tmp_path)
    wins: dict[int, bool] = {}

    def write(i: int) -> None:
        wins[i] = store.create("k", str(i).encode())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (winner,) = [i for i, won in wins.items() if won]
    assert len(wins) == 16 and store.get("k") == str(winner).encode()  # the winner's bytes: no loser overwrote them


def test_unwritable_store_raises_storage_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError):
        LocalStorage(tmp_path / "file" / "store")
    store = LocalStorage(tmp_path / "store")
    store.put("log", b"a file where a folder should be")
    with pytest.raises(StorageError):
        store.create("log/0001.json", b"x")


def test_open_storage_picks_by_url(tmp_path):
    assert isinstance(open_storage(str(tmp_path / "a")), LocalStorage)
    assert open_storage(f"file://{tmp_path}/b").root == tmp_path / "b"
    with pytest.raises(ValueError):
        open_storage("ftp://example/x")


def test_only_numbered_entries_and_checkpoints_count():
    from livedigits.state.journal import number_of

    assert number_of("log/0000000005.json") == 5 and number_of("checkpoints/0000000050.zip") == 50
    for foreign in ("log/0000000005.json.tmp", "log/5.txt", "log/x.json", "log/.0000000005.json", "drawings/5.png"):
        assert number_of(foreign) is None
