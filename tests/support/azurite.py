"""A throw-away Azurite (the Azure Storage emulator) for tests: blob service only, on a free loopback port.

Installed by ``make azurite`` (scripts/install-azurite.sh) into ``.tools/azurite``. The account and its
key are made up per run (``AZURITE_ACCOUNTS``), so a test can look for the key in logs and output.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = Path(os.environ.get("MLYARD_AZURITE_DIR", ROOT / ".tools" / "azurite")) / "node_modules/.bin/azurite-blob"
MISSING = ("Azurite is not installed: run 'make azurite' (scripts/install-azurite.sh); "
           "Azure Blob datastore tests skipped")


def azurite_installed() -> bool:
    return AZURITE_BIN.is_file() and os.access(AZURITE_BIN, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Azurite:
    account: str = field(default_factory=lambda: f"mlyard{secrets.token_hex(4)}")
    key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    folder: Path | None = None

    @property
    def endpoint(self) -> str:
        """What a datastore YAML gives as ``endpoint`` (path-style, with ``protocol: http``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
                f"BlobEndpoint=http://{self.endpoint}/{self.account};")

    def start(self, timeout: float = 30) -> Azurite:
        self.folder = Path(tempfile.mkdtemp(prefix="mlyard-azurite-"))
        self.port = _free_port()
        env = {**os.environ, "AZURITE_ACCOUNTS": f"{self.account}:{self.key}"}
        log = (self.folder / "azurite.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603
            [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location",
             str(self.folder / "data"), "--skipApiVersionCheck", "--loose", "--silent"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Azurite exited: {(self.folder / 'azurite.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Azurite did not listen on port {self.port} within {timeout}s")

    def filesystem(self) -> Any:
        """adlfs used directly (no mlyard in between), for checks and the benchmark's peer."""
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=self.connection_string, skip_instance_cache=True,
                                         use_listings_cache=False)

    def create_container(self, name: str) -> str:
        self.filesystem().mkdir(name)
        return name

    def datastore_spec(self, name: str, container: str, **credentials: str) -> dict[str, Any]:
        """An ``azure_blob`` datastore YAML's content for a container of this Azurite."""
        return {"$schema": "https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json", "name": name,
                "type": "azure_blob", "account_name": self.account, "container_name": container,
                "endpoint": self.endpoint, "protocol": "http",
                "credentials": credentials or {"account_key": self.key}}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.folder is not None:
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)
