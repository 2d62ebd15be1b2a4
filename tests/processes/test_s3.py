"""S3 storage against a real S3 API on loopback (moto's server, in its own process): the storage
contract, boot on awkward buckets, two app processes on one bucket, and an outage in the middle."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import create_app
from drawings import canvas_of, stroke_canvas, to_data_url
from s3server import CREDENTIALS, Proxy
from server import Server, free_port, request

from livedigits.config import Config
from livedigits.state.storage import S3Storage, StorageError, open_storage
from main import close_service

ONE = to_data_url(stroke_canvas([(140, 40), (140, 240)]))
SEVEN = to_data_url(stroke_canvas([(60, 50), (220, 50), (120, 240)]))


pytestmark = pytest.mark.usefixtures("s3_credentials")


@pytest.fixture
def bucket(moto) -> str:
    return moto.new_bucket()


@pytest.fixture(scope="module")
def digits(mnist_test) -> list[tuple[str, int]]:
    """40 t10k digits as the browser sends them (data URLs of a 280x280 canvas), with their labels."""
    images, labels = mnist_test
    return [(to_data_url(canvas_of(images[i])), int(labels[i])) for i in range(40)]


def s3_config(moto, bucket: str, **settings) -> Config:
    return Config(storage_url=f"s3://{bucket}/digits", s3_endpoint_url=moto.url, sync_interval=0.0, **settings)


def server_env(moto, bucket: str, endpoint_url: str | None = None, **settings: str) -> dict[str, str]:
    return {
        "STORAGE_URL": f"s3://{bucket}/digits",
        "S3_ENDPOINT_URL": endpoint_url or moto.url,
        "WEB_CONCURRENCY": "1",
        "SYNC_INTERVAL": "0.2",
        "RATE_LIMITS": "off",
        **CREDENTIALS,
        **settings,
    }


# --- the storage contract on S3 -------------------------------------------------------------------


def test_open_storage_reads_bucket_and_prefix(moto):
    store = open_storage("s3://my-bucket/some/prefix/", moto.url)
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix, store.endpoint_url) == ("my-bucket", "some/prefix/", moto.url)
    assert open_storage("s3://my-bucket").prefix == ""
    with pytest.raises(ValueError):
        open_storage("s3:///no-bucket")


def test_create_is_create_only(moto, bucket):
    store = open_storage(f"s3://{bucket}/p", moto.url)
    assert store.create("log/0000000001.json", b"first")
    assert not store.create("log/0000000001.json", b"second")
    # A retried request whose first attempt landed finds its own bytes there: that is a success.
    assert store.create("log/0000000001.json", b"first")
    assert store.get("log/0000000001.json") == b"first"
    assert moto.keys(bucket) == ["p/log/0000000001.json"]


def test_concurrent_creates_have_one_winner(moto, bucket):
    stores = [open_storage(f"s3://{bucket}/p", moto.url) for _ in range(2)]  # two processes' clients
    with ThreadPoolExecutor(16) as pool:
        wins = list(pool.map(lambda i: stores[i % 2].create("log/0000000007.json", f"writer {i}".encode()), range(16)))
    assert wins.count(True) == 1
    assert stores[0].get("log/0000000007.json") == f"writer {wins.index(True)}".encode()


def test_put_get_list(moto, bucket):
    store = open_storage(f"s3://{bucket}/p", moto.url)
    for n in (3, 1, 2):
        store.put(f"log/{n:04d}.json", str(n).encode())
    store.put("log/0002.json", b"replaced")
    store.put("log/nested/0009.json", b"not directly under log/")
    moto.client().put_object(Bucket=bucket, Key="log/0005.json", Body=b"outside the prefix")
    assert store.list("log/") == ["log/0001.json", "log/0002.json", "log/0003.json"]
    assert store.list("log/", start_after="log/0001.json") == ["log/0002.json", "log/0003.json"]
    assert store.list("nothing/") == []
    assert store.get("log/0002.json") == b"replaced"
    with pytest.raises(KeyError):
        store.get("log/0009.json")
    with pytest.raises(ValueError):
        store.get("../escape")


def test_list_pages_past_a_thousand_keys(moto, bucket):
    store = open_storage(f"s3://{bucket}", moto.url)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: store.put(f"log/{n:010d}.json", b"{}"), range(1, 1206)))
    assert store.list("log/") == [f"log/{n:010d}.json" for n in range(1, 1206)]
    assert store.list("log/", start_after="log/0000000999.json")[0] == "log/0000001000.json"


def test_unreachable_s3_fails_fast_with_storage_error():
    store = open_storage("s3://bucket/p", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot list log/"):
        store.list("log/")
    assert time.monotonic() - started < 10  # three attempts with short timeouts, never a hang
    started = time.monotonic()
    with pytest.raises(StorageError, match="unavailable"):
        store.put("drawings/x.png", b"png")  # paused after a failure: no second wait
    assert time.monotonic() - started < 1.0  # a connect attempt alone would wait 2 s


def test_missing_bucket_is_a_storage_error(moto):
    with pytest.raises(StorageError, match="NoSuchBucket"):
        open_storage("s3://no-such-bucket/p", moto.url).list("log/")


# --- boot -----------------------------------------------------------------------------------------


def test_boot_on_an_empty_bucket_and_train(moto, bucket):
    client = create_app(s3_config(moto, bucket)).test_client()
    assert client.get("/healthz").get_json()["model_version"] == 0
    response = client.post("/api/train", json={"image": ONE, "label": 1})
    assert response.status_code == 200 and response.get_json()["model_version"] == 1
    keys = moto.keys(bucket)
    assert "digits/log/0000000001.json" in keys
    assert sum(k.startswith("digits/drawings/") for k in keys) == 1


def test_boot_survives_an_old_apps_bucket_and_a_damaged_checkpoint(moto, bucket):
    s3 = moto.client()
    for key in ("0c3f1e2a.png", "tmp/model.ckpt.index", "log/notes.txt", "checkpoints/old.zip"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"left by the original app")  # at the bucket root
    config = Config(storage_url=f"s3://{bucket}", s3_endpoint_url=moto.url, sync_interval=0.0, checkpoint_every=2)
    app = create_app(config)
    client = app.test_client()
    for image, label in ((ONE, 1), (SEVEN, 7), (ONE, 1)):
        assert client.post("/api/train", json={"image": image, "label": label}).status_code == 200
    app.extensions["learner"].flush_checkpoints()
    expected = client.post("/api/predict", json={"image": SEVEN}).get_json()
    assert "checkpoints/0000000002.zip" in moto.keys(bucket)
    whole = s3.get_object(Bucket=bucket, Key="checkpoints/0000000002.zip")["Body"].read()
    s3.put_object(Bucket=bucket, Key="checkpoints/0000000002.zip", Body=whole[: len(whole) // 2])
    close_service(app)
    rebooted = create_app(config).test_client()
    assert rebooted.post("/api/predict", json={"image": SEVEN}).get_json() == expected
    assert rebooted.get("/api/stats").get_json()["samples"]["total"] == 3


def test_boot_with_s3_unreachable_fails_fast():
    config = Config(storage_url="s3://bucket/p", s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(StorageError, match="Could not connect"):
        create_app(config)
    assert time.monotonic() - started < 30


# --- processes on one bucket ----------------------------------------------------------------------


def wait_for_version(url: str, image: str, version: int, timeout: float = 60) -> dict:
    """Predict until the process has caught up with `version` (predictions sync, throttled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = request(f"{url}/api/predict", {"image": image})
        assert status == 200, body
        if body["model_version"] >= version:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not reach version {version}")


def wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_two_processes_on_one_bucket_converge(moto, bucket, digits):
    env = server_env(moto, bucket, CHECKPOINT_EVERY="10")
    servers = [Server(env), Server(env)]
    try:
        for server in servers:
            assert server.wait_healthy(timeout=180)["model_version"] == 0

        def train(i: int) -> int:
            image, label = digits[i]
            status, body = request(f"{servers[i % 2].url}/api/train", {"image": image, "label": label}, timeout=60)
            # 202: stored, and this process's learner is still applying the other process's entries (each
            # `all` process learns every entry itself: that is what ROLE=serve plus one learner avoids).
            assert status in (200, 202), body
            return int(body["sample_id"])

        with ThreadPoolExecutor(4) as pool:  # two clients on each process
            sample_ids = list(pool.map(train, range(40)))
        assert sorted(sample_ids) == list(range(1, 41))

        probes = [digits[0][0], ONE, SEVEN]
        answers = [[wait_for_version(server.url, probe, 40) for probe in probes] for server in servers]
    finally:
        for server in servers:
            server.kill(signal.SIGTERM)
    assert {a["model_version"] for both in answers for a in both} == {40}
    assert answers[0] == answers[1]  # the same weights in both processes
    assert answers[0][0]["predictions"]["cnn"]["retrained"] != answers[0][0]["predictions"]["cnn"]["original"]
    keys = moto.keys(bucket, "digits/")
    assert sum(k.startswith("digits/drawings/") for k in keys) == 40
    assert [k for k in keys if k.startswith("digits/log/")] == [f"digits/log/{n:010d}.json" for n in range(1, 41)]
    assert "digits/checkpoints/0000000040.zip" in keys


def test_outage_in_the_middle_refuses_trains_keeps_predicting_and_loses_nothing(moto, bucket, digits):
    proxy = Proxy(moto.port)
    server = Server(server_env(moto, bucket, endpoint_url=proxy.url, CHECKPOINT_EVERY="5"))
    acknowledged: list[int] = []
    refused: list[tuple[float, dict]] = []
    stop = threading.Event()

    def trainer(offset: int) -> None:
        i = offset
        while not stop.is_set():
            image, label = digits[i % len(digits)]
            started = time.monotonic()
            status, body = request(f"{server.url}/api/train", {"image": image, "label": label}, timeout=60)
            if status in (200, 202):  # 202: stored, but the learner could not read it back before the cut
                acknowledged.append(int(body["sample_id"]))
            else:
                refused.append((time.monotonic() - started, body))
                time.sleep(0.1)
            i += 2

    try:
        server.wait_healthy(timeout=180)
        trainers = [threading.Thread(target=trainer, args=(n,)) for n in range(2)]
        for thread in trainers:
            thread.start()
        wait_until(lambda: len(acknowledged) >= 3)
        proxy.cut()
        time.sleep(1)
        during = []
        for image, _ in digits[:5]:
            started = time.monotonic()
            status, _ = request(f"{server.url}/api/predict", {"image": image})
            during.append((status, time.monotonic() - started))
        # A train in flight at the cut runs out its retries first (backoff has jitter): wait, do not guess.
        wait_until(lambda: refused, timeout=30)
        time.sleep(1)
        proxy.restore()
        after_restore = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= after_restore + 3)  # training resumes by itself
        stop.set()
        for thread in trainers:
            thread.join()
        entries = [int(k.rsplit("/", 1)[1][:10]) for k in moto.keys(bucket, "digits/log/")]
        served = wait_for_version(server.url, ONE, len(entries))
    finally:
        stop.set()
        server.kill(signal.SIGTERM)
        proxy.close()

    assert all(body["error"] == "storage_unavailable" for _, body in refused)
    assert max(seconds for seconds, _ in refused) < 10  # refused quickly, never hung
    assert all(status == 200 for status, _ in during), during
    assert max(seconds for _, seconds in during) < 10
    # Nothing acknowledged is lost; the log has no gaps; a fresh process lands on the same models.
    assert entries == list(range(1, len(entries) + 1))
    assert set(acknowledged) <= set(entries)
    assert served["model_version"] == len(entries)
    fresh = create_app(s3_config(moto, bucket)).test_client()
    assert fresh.post("/api/predict", json={"image": ONE}).get_json() == served
