"""Stage-in against the session's Azurite (real SAS minted with azure-storage-blob) and a local HTTP server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.agent.conftest import Storage, Volume, signature
from tests.httpserve import serving_on_a_thread

pytestmark = pytest.mark.azurite


@pytest.fixture
def http_files() -> Iterator[str]:
    """An https-less file server on loopback (the spec allows http only there): /data.csv, and /short that
    breaks off mid-file."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/short":  # promises 100 bytes, sends 10 and hangs up
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"0123456789")
                self.close_connection = True
                return
            if self.path.split("?")[0] != "/data.csv":
                self.send_error(404)
                return
            body = b"a,b\n1,2\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving_on_a_thread(HTTPServer(("127.0.0.1", 0), Handler)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def tenant(storage: Storage, blobs: dict[str, bytes]) -> str:
    name = f"acb-{uuid.uuid4().hex[:12]}"
    client = storage.container(name)
    for blob, data in blobs.items():
        client.upload_blob(blob, data)
    return name


def test_container_and_http_inputs_land_in_the_working_directory(
    volume: Volume, storage: Storage, http_files: str
) -> None:
    name = tenant(storage, {"inputs/set/a.txt": b"A", "inputs/set/deep/b.txt": b"BB", "inputs/other/c.txt": b"C"})
    container_url = storage.container_url(name, "rl")
    volume.write_manifest(
        {
            "inputs": [
                {
                    "kind": "container",
                    "containerUrl": container_url,
                    "blobPrefix": "inputs/set/",
                    "stripPrefix": "inputs/set/",
                    "filePath": "in",
                    "fileMode": "0770",
                },
                {"kind": "http", "url": f"{http_files}/data.csv?t=x", "filePath": "csv/data.csv", "fileMode": "0640"},
            ]
        }
    )
    run = volume.agent("stage-in")
    outcome = volume.stagein()
    assert {key: outcome[key] for key in ("ok", "files")} == {"ok": True, "files": 3}
    assert re.fullmatch(r"[0-9a-f]{24}", outcome["run"])  # a new id each start of the group (the report marker)
    assert (volume.wd / "in" / "a.txt").read_bytes() == b"A"
    assert (volume.wd / "in" / "deep" / "b.txt").read_bytes() == b"BB"
    assert not (volume.wd / "in" / "c.txt").exists()
    assert (volume.wd / "in" / "a.txt").stat().st_mode & 0o777 == 0o770
    assert (volume.wd / "csv" / "data.csv").read_bytes() == b"a,b\n1,2\n"
    assert (volume.wd / "csv" / "data.csv").stat().st_mode & 0o777 == 0o640
    for shared in ("wd", "logs", "state"):
        assert (volume.root / shared).stat().st_mode & 0o777 == 0o777
    assert signature(container_url) not in run.stderr + run.stdout


def test_listing_follows_next_marker_across_pages(storage: Storage) -> None:
    from acibatch_agent import storage as agent_storage

    name = tenant(storage, {f"inputs/p/{index}.txt": b"x" for index in range(7)})
    names = list(agent_storage.list_blobs(storage.container_url(name, "rl"), "inputs/p/", page_size=2))
    assert sorted(names) == sorted(f"inputs/p/{index}.txt" for index in range(7))


def test_a_path_with_dot_dot_segments_is_refused() -> None:
    from acibatch_agent.stagein import InputError, target_path

    for bad in ("a/../../escape.txt", "../x", "/etc/passwd", "a\\..\\..\\x"):
        with pytest.raises(InputError, match="outside the task's working directory"):
            target_path("/acibatch/wd", bad)
    assert target_path("/acibatch/wd", "./a//b.txt") == "/acibatch/wd/a/b.txt"


def test_a_blob_name_climbing_out_of_the_working_directory_is_refused(volume: Volume, storage: Storage) -> None:
    # The service refuses `..` segments in a request path but turns backslashes into slashes, so whoever can
    # write the container can still store a blob named with `..` segments.
    name = tenant(storage, {"inputs/x/ok.txt": b"ok", "inputs/x/a\\..\\..\\..\\..\\escape.txt": b"evil"})
    bad = "inputs/x/a/../../../../escape.txt"
    assert bad in storage.names(name)
    url = storage.container_url(name, "rl")
    volume.write_manifest({"inputs": [{"kind": "container", "containerUrl": url, "blobPrefix": "inputs/x/"}]})
    volume.agent("stage-in")
    outcome = volume.stagein()
    assert outcome["ok"] is False
    assert outcome["file"] == bad
    assert "outside the task's working directory" in outcome["message"]
    assert not list(volume.root.parent.rglob("escape.txt"))


def test_a_file_path_climbing_out_is_refused_even_if_the_spec_let_it_through(volume: Volume, http_files: str) -> None:
    volume.write_manifest({"inputs": [{"kind": "http", "url": f"{http_files}/data.csv", "filePath": "../data.csv"}]})
    volume.agent("stage-in")
    assert volume.stagein()["ok"] is False
    assert not (volume.root / "data.csv").exists()


def test_a_missing_blob_is_a_failure_naming_the_file_without_the_sas(volume: Volume, storage: Storage) -> None:
    name = tenant(storage, {"inputs/x/present.txt": b"here"})
    missing = storage.blob_url(name, "inputs/x/missing.txt", "r")
    volume.write_manifest(
        {
            "inputs": [
                {"kind": "container", "containerUrl": storage.container_url(name, "rl"), "blobPrefix": "inputs/x/"},
                {"kind": "http", "url": missing, "filePath": "m/missing.txt"},
            ]
        }
    )
    run = volume.agent("stage-in")
    assert run.returncode == 0  # the init container never fails: the sidecar reports
    outcome = volume.stagein()
    assert outcome["ok"] is False
    assert outcome["file"] == "m/missing.txt"
    assert "HTTP 404 BlobNotFound" in outcome["message"]
    assert "?" not in outcome["message"]
    assert signature(missing) not in (volume.state / "stagein.json").read_text() + run.stderr
    assert not (volume.wd / "m" / "missing.txt").exists()
    assert not list((volume.wd / "m").iterdir())  # no partial file left behind


def test_a_sas_without_list_permission_fails_with_the_storage_error_code(volume: Volume, storage: Storage) -> None:
    name = tenant(storage, {"inputs/x/a.txt": b"a"})
    url = storage.container_url(name, "r")
    volume.write_manifest({"inputs": [{"kind": "container", "containerUrl": url, "blobPrefix": "inputs/x/"}]})
    volume.agent("stage-in")
    outcome = volume.stagein()
    assert outcome["ok"] is False
    assert "HTTP 403" in outcome["message"]
    assert signature(url) not in outcome["message"]


def test_an_unreadable_manifest_is_recorded_and_the_init_container_still_exits_zero(volume: Volume) -> None:
    (volume.secrets / "manifest.json").write_text("{not json")
    assert volume.agent("stage-in").returncode == 0
    assert volume.stagein()["ok"] is False
    assert volume.run.exists()


def test_a_download_cut_short_is_a_failure_and_leaves_no_partial_file(volume: Volume, http_files: str) -> None:
    volume.write_manifest({"inputs": [{"kind": "http", "url": f"{http_files}/short", "filePath": "s/short.bin"}]})
    volume.agent("stage-in")
    outcome = volume.stagein()
    assert outcome["ok"] is False
    assert outcome["file"] == "s/short.bin"
    assert "cut short after 10 of 100 bytes" in outcome["message"]
    assert list((volume.wd / "s").iterdir()) == []
