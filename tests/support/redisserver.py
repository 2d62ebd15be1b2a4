"""A real Redis on loopback for the rate-limit tests: Debian's redis-server on a free port, with no persistence,
in its own folder. A test can kill it and start it again on the same port (empty, as a Redis without
persistence comes back), or freeze it (SIGSTOP), so that connections open but nothing answers.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from server import free_port

REDIS_SERVER = Path("/usr/bin/redis-server")


class RedisServer:
    """`redis-server` on 127.0.0.1. With `tls`, it speaks only TLS with a self-signed certificate for
    127.0.0.1, as Heroku's Key-Value Store does for its `rediss://` URLs; `ca_file` is that certificate."""

    def __init__(self, directory: Path, tls: bool = False, maxclients: int | None = None):
        if not REDIS_SERVER.exists():
            pytest.fail(f"{REDIS_SERVER} is missing: `bash scripts/test.sh` installs Debian's redis-server")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.maxclients = maxclients  # as a Key-Value Store plan's limit (mini: 20)
        self.ca_file = directory / "cert.pem"
        if tls:
            write_self_signed_certificate(self.ca_file, directory / "key.pem")
        self.url = f"{'rediss' if tls else 'redis'}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        listen = ["--port", str(self.port)]
        if self.tls:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            listen += ["--tls-cert-file", str(self.ca_file), "--tls-key-file", str(self.directory / "key.pem")]
        no_persistence = ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        if self.maxclients is not None:
            no_persistence += ["--maxclients", str(self.maxclients)]
        self.process = subprocess.Popen(
            [str(REDIS_SERVER), *listen, "--bind", "127.0.0.1", *no_persistence, "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def client(self) -> redis.Redis:
        if self.tls:
            return redis.Redis.from_url(self.url, ssl_ca_certs=str(self.ca_file), socket_timeout=2)
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: what it held is gone, and connections to its port are refused until `start`."""
        if self.process and self.process.poll() is None:
            self.thaw()
            self.process.kill()
            self.process.wait(timeout=30)

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing reads or answers them."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)


def write_self_signed_certificate(cert_file: Path, key_file: Path) -> None:
    """A certificate for 127.0.0.1 that signs itself, so no default trust store accepts it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
