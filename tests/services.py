"""Real network services for tests: an S3 endpoint (moto's server) and the flaky HTTP server.

`MotoS3` is an S3 server on 127.0.0.1 (a free port): a real S3 HTTP endpoint that
s3fs/aiobotocore reach over a socket, not a patched client; `env()` is the standard AWS
environment that points at it, `reset()` wipes it (POST /moto-api/reset). `fresh_filesystems()`
drops every cached fsspec filesystem, so a test that moves the endpoint starts clean.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass

from pipeline import storage

BUCKET = "gristmill-test"


class MotoS3:
    """A moto S3 server in a thread of this process."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """The standard AWS environment that points boto/s3fs (and Ray workers) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def keys(self, bucket: str = BUCKET, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def stop(self) -> None:
        self._server.stop()


def fresh_filesystems() -> None:
    """Forget every fsspec filesystem this process made: storage's per-protocol cache AND fsspec's
    own instance cache (keyed by constructor arguments, not by the environment, so it would keep
    an s3fs bound to an earlier test's endpoint)."""
    storage.reset_filesystems()


@dataclass
class S3:
    server: MotoS3
    bucket: str

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])
