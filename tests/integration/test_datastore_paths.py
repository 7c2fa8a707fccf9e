"""Data behind ``azureml://datastores/...`` paths: uploads into a datastore, assets registered by path, and
step reuse that follows the files there now (not what the asset or URI looked like when it was named).

One server serves the module; each test uses paths and names of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.support.jobs import JobYard, steps_of, write
from tests.support.server import ServerProcess

STORE = "azureml://datastores/workspaceblobstore/paths"


@pytest.fixture(scope="module")
def yard(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> JobYard:
    root = tmp_path_factory.mktemp("project")
    write(root / "train" / "rows.csv", "a,b\n1,2\n")
    write(root / "train" / "more" / "extra.csv", "a,b\n5,6\n")
    write(root / "rows-v2.csv", "a,b\n3,4\n")
    return JobYard(server, root)


def _fails(yard: JobYard, *args: str) -> str:
    """Run a CLI command that must fail with one clear line; returns that line."""
    proc = yard.cli(*args, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr
    return proc.stderr


def test_datastore_upload_fills_a_path_and_prints_its_uri(yard: JobYard) -> None:
    store = yard.datastore_root()
    folder = yard.cli("datastore", "upload", "--src", "train", "--path", "up/train").stdout.strip()
    assert folder == f"{STORE}/up/train/"
    assert (store / "up" / "train" / "rows.csv").read_text() == "a,b\n1,2\n"  # the folder's contents, as az does
    assert (store / "up" / "train" / "more" / "extra.csv").read_text() == "a,b\n5,6\n"
    one = yard.cli("datastore", "upload", "-s", "rows-v2.csv", "-p", f"{STORE}/up/files/").stdout.strip()
    assert one == f"{STORE}/up/files/rows-v2.csv" and (store / "up" / "files" / "rows-v2.csv").is_file()
    assert yard.cli("datastore", "upload", "--src", "train", "--path", "up/train").stdout.strip() == folder  # same

    # other content at a path is refused without --overwrite, and nothing changes
    other = write(yard.root / "other" / "rows.csv", "x,y\n7,8\n")
    error = _fails(yard, "datastore", "upload", "--src", str(other), "--path", "up/train/rows.csv")
    assert "'up/train/rows.csv'" in error and "--overwrite" in error
    assert (store / "up" / "train" / "rows.csv").read_text() == "a,b\n1,2\n"
    yard.cli("datastore", "upload", "--src", str(other), "--path", "up/train/rows.csv", "--overwrite")
    assert (store / "up" / "train" / "rows.csv").read_text() == "x,y\n7,8\n"

    # paths that leave the datastore, and content-addressed uploads, are refused before anything is written
    assert "'..'" in _fails(yard, "datastore", "upload", "--src", "train", "--path", "up/../../escape")
    assert "absolute" in _fails(yard, "datastore", "upload", "--src", "train", "--path", "/etc/up")
    unknown = _fails(yard, "datastore", "upload", "-s", "train", "-p", "x", "-n", "nosuch")
    assert "no datastore named 'nosuch'" in unknown
    assert not (store.parent / "escape").exists() and not (store / "escape").exists()


def test_an_asset_whose_path_holds_nothing_is_refused_or_warned_and_never_read_as_empty(yard: JobYard) -> None:
    missing = f"{STORE}/nothing/here/"
    error = _fails(yard, "data", "create", "--name", "by-missing-path", "--type", "uri_folder", "--path", missing)
    assert missing in error and "--allow-missing-path" in error and "mlyard datastore upload" in error
    assert "not found" in _fails(yard, "data", "show", "-n", "by-missing-path")  # nothing was created

    made = yard.cli("data", "create", "--name", "by-missing-path", "--type", "uri_folder", "--path", missing,
                    "--allow-missing-path")
    assert "warning:" in made.stderr and missing in made.stderr
    error = _fails(yard, "data", "download", "-n", "by-missing-path", "-p", "dl-missing")
    assert "by-missing-path:1" in error and missing in error and "no files" in error
    assert not (yard.root / "dl-missing" / "by-missing-path").exists()

    path = write(yard.root / "reads-missing.yml", """\
        command: ls ${{inputs.data}}
        environment: @ENV@
        inputs:
          data: {type: uri_folder, path: "azureml:by-missing-path@latest"}
        """)
    job = yard.run(path)
    assert job["status"] == "Failed"
    assert job["error"].startswith("Preparing: inputs.data: ")
    assert "by-missing-path:1" in job["error"] and missing in job["error"]

    direct = write(yard.root / "reads-missing-uri.yml", f"""\
        command: ls ${{{{inputs.data}}}}
        environment: @ENV@
        inputs:
          data: {{type: uri_folder, path: "{STORE}/nothing/there"}}
        """)
    job = yard.run(direct)
    assert job["status"] == "Failed" and f"{STORE}/nothing/there" in job["error"]

    # once data is there, the same asset downloads what the path holds now
    yard.cli("datastore", "upload", "--src", "train", "--path", "nothing/here")
    target = yard.cli("data", "download", "-n", "by-missing-path", "-p", "dl-missing").stdout
    assert "dl-missing" in target
    assert (yard.root / "dl-missing" / "by-missing-path" / "here" / "rows.csv").read_text() == "a,b\n1,2\n"


def test_pipeline_steps_rerun_when_the_files_behind_a_path_change(yard: JobYard) -> None:
    store = yard.datastore_root()
    yard.cli("datastore", "upload", "--src", "train", "--path", "reuse/by-asset")
    yard.cli("datastore", "upload", "--src", "train", "--path", "reuse/direct")
    yard.cli("data", "create", "--name", "train-by-path", "--type", "uri_folder", "--path", f"{STORE}/reuse/by-asset/")
    path = write(yard.root / "reuse-paths.yml", f"""\
        type: pipeline
        inputs:
          by_asset: {{type: uri_folder, path: "azureml:train-by-path@latest"}}
        jobs:
          from_asset:
            environment: @ENV@
            command: cat ${{{{inputs.data}}}}/rows.csv > ${{{{outputs.out}}}}/seen.csv
            inputs: {{data: "${{{{parent.inputs.by_asset}}}}"}}
            outputs: {{out: }}
          from_uri:
            environment: @ENV@
            command: cp ${{{{inputs.data}}}}/rows.csv ${{{{outputs.out}}}}/seen.csv
            inputs:
              data: {{type: uri_folder, path: "{STORE}/reuse/direct/"}}
            outputs: {{out: }}
        """)

    def seen(step: dict[str, object]) -> str:
        return yard.stored(step["outputs"]["out"]["uri"]).joinpath("seen.csv").read_text()  # type: ignore[index]

    first = steps_of(yard.completed(path))
    assert not any(s["reused_from"] for s in first.values())
    unchanged = steps_of(yard.completed(path))
    assert {k: s["reused_from"] for k, s in unchanged.items()} == {k: s["name"] for k, s in first.items()}

    # new content behind the asset's path, put there with the CLI: the step that reads it runs again
    write(yard.root / "v2" / "rows.csv", "a,b\n9,9,9\n")
    yard.cli("datastore", "upload", "--src", str(yard.root / "v2" / "rows.csv"), "--path",
             "reuse/by-asset/rows.csv", "--overwrite")
    pipeline = yard.completed(path)
    changed = steps_of(pipeline)
    assert changed["from_asset"]["reused_from"] is None and seen(changed["from_asset"]) == "a,b\n9,9,9\n"
    assert changed["from_uri"]["reused_from"] == first["from_uri"]["name"]
    identity = changed["from_asset"]["inputs"]["data"]["identity"]
    assert identity.startswith("tree:") and identity != first["from_asset"]["inputs"]["data"]["identity"]
    assert pipeline["inputs"]["by_asset"]["identity"] == identity  # recorded on the pipeline too

    # a file changed by hand behind a direct URI, with the same size as the bytes mlyard recorded for it
    csv = store / "reuse" / "direct" / "rows.csv"
    before = csv.stat()
    csv.write_text("a,b\n1,3\n")
    os.utime(csv, ns=(before.st_atime_ns, max(before.st_mtime_ns + 1_000_000, csv.stat().st_mtime_ns)))
    edited = steps_of(yard.completed(path))
    assert edited["from_uri"]["reused_from"] is None and seen(edited["from_uri"]) == "a,b\n1,3\n"
    assert edited["from_asset"]["reused_from"] == changed["from_asset"]["name"]


def test_overwriting_a_registered_assets_file_is_refused(yard: JobYard) -> None:
    yard.cli("data", "create", "--name", "uploaded-rows", "--type", "uri_file", "--path", "train/rows.csv")
    asset = yard.client.data.get("uploaded-rows")
    rel = asset["path"].removeprefix(f"{STORE}/")
    response = httpx.put(f"{yard.server.url}/api/v1/datastores/workspaceblobstore/paths/{rel}",
                         params={"overwrite": "true"}, content=b"changed", headers=yard.server.headers())
    assert response.status_code == 409 and "content-addressed" in response.json()["error"]["message"]
    assert Path(yard.stored(asset["path"])).read_text() == "a,b\n1,2\n"
