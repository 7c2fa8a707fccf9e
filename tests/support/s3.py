"""A throw-away S3 server for tests: moto's server mode, a real HTTP server on a free loopback port.

The access key is made up per run as an IAM user of the moto server, and IAM authentication is switched on
before any test runs (``/moto-api/reset-auth``), so a wrong key or secret is refused as AWS refuses it and a
test can look for the secret in logs and output.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

MISSING = "moto[server] and s3fs are not installed: pip install -e '.[dev]'; S3 datastore tests skipped"
REGION = "us-east-1"


def s3_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("moto", "flask", "s3fs", "boto3"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    port: int = 0
    access_key_id: str = ""
    secret_access_key: str = ""
    server: Any = field(default=None, repr=False)

    @property
    def endpoint_url(self) -> str:
        """What a datastore YAML gives as ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        import boto3
        import httpx
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.port = _free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}  # before authentication is on
        iam = boto3.client("iam", endpoint_url=self.endpoint_url, region_name=REGION, **setup)
        user = f"mlyard-{secrets.token_hex(4)}"
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        policy = iam.create_policy(PolicyName=f"{user}-s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        iam.attach_user_policy(UserName=user, PolicyArn=policy["Policy"]["Arn"])
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
        httpx.post(f"{self.endpoint_url}/moto-api/reset-auth", content=b"0").raise_for_status()
        return self

    def client(self) -> Any:
        """boto3's S3 client with the good key (no mlyard in between), for checks."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        """Every object key in ``bucket``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def uploads(self, bucket: str) -> list[str]:
        """The keys of multipart uploads still in progress in ``bucket``."""
        return sorted(u["Key"] for u in self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    def datastore_spec(self, name: str, bucket: str, **credentials: str) -> dict[str, Any]:
        """A ``type: s3`` datastore YAML's content for a bucket of this server."""
        return {"name": name, "type": "s3", "bucket": bucket, "endpoint_url": self.endpoint_url, "region": REGION,
                "credentials": credentials or {"access_key_id": self.access_key_id,
                                               "secret_access_key": self.secret_access_key}}

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
