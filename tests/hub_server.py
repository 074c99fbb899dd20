"""A tiny Hugging Face Hub on 127.0.0.1 for the model-store tests.

It speaks the part of the Hub's URL scheme that huggingface_hub's downloads use:

    GET  /api/models/{org}/{name}[/revision/{rev}]?blobs=True  -> {id, sha, siblings: [{rfilename, size, blobId, lfs}]}
    HEAD /{org}/{name}/resolve/{rev}/{path}                    -> X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size
    GET  /{org}/{name}/resolve/{rev}/{path}  [Range: bytes=N-]  -> the bytes (206 for a range)

Files count as LFS (ETag = sha256 of the content) unless they are small text files, whose
ETag is the git blob sha1, as on the Hub. Faults for tests: `cut_once[path] = n` sends the
full Content-Length but only n bytes of the next GET of that file, then drops the connection;
a file whose name is in `deny` answers 404 although the listing names it.
Every request is recorded in `requests` (method, path, Range, Authorization).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TEXT_SUFFIXES = (".json", ".yaml", ".md", ".txt", ".gitattributes")


@dataclass
class Repo:
    files: dict[str, Path]                   # path in repo -> file on disk
    commit: str = ""
    revisions: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    def __init__(self, repos: dict[str, Repo]):
        self.repos = repos
        for repo_id, repo in repos.items():
            repo.commit = repo.commit or hashlib.sha1(repo_id.encode()).hexdigest()
            repo.revisions.setdefault("main", repo.commit)
        self.requests: list[tuple[str, str, str, str]] = []
        self.cut_once: dict[str, int] = {}
        self.deny: set[str] = set()
        self._meta: dict[Path, dict] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def meta(self, path: Path) -> dict:
        """size, lfs flag and ETag of one served file (hashed once)."""
        if path not in self._meta:
            size, lfs = path.stat().st_size, not path.name.endswith(TEXT_SUFFIXES)
            h = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % size)
            with open(path, "rb") as f:  # in chunks: served files may be gigabytes
                while chunk := f.read(8 << 20):
                    h.update(chunk)
            self._meta[path] = {"size": size, "lfs": lfs, "etag": h.hexdigest()}
        return self._meta[path]

    def _resolve(self, repo_id: str, rev: str) -> tuple[Repo, str] | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        commit = repo.revisions.get(rev) or (rev if rev in repo.revisions.values() else None)
        return (repo, commit) if commit else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _record(self):
                with server._lock:
                    server.requests.append((self.command, unquote(urlsplit(self.path).path),
                                            self.headers.get("Range", ""), self.headers.get("Authorization", "")))

            def _error(self, status: int, code: str, message: str, commit: str = ""):
                body = json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                self._serve()

            def do_HEAD(self):
                self._serve()

            def _serve(self):
                self._record()
                path = unquote(urlsplit(self.path).path)
                if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path):
                    return self._listing(m.group(1), m.group(2) or "main")
                if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                    return self._file(m.group(1), m.group(2), m.group(3))
                self._error(404, "EntryNotFound", f"no route {path}")

            def _listing(self, repo_id: str, rev: str):
                found = server._resolve(repo_id, rev)
                if found is None:
                    code = "RepoNotFound" if repo_id not in server.repos else "RevisionNotFound"
                    return self._error(404, code, f"{repo_id}@{rev} not found")
                repo, commit = found
                siblings = []
                for name, disk in sorted(repo.files.items()):
                    m = server.meta(disk)
                    sibling = {"rfilename": name, "size": m["size"],
                               "blobId": _git_sha1(b"pointer " + m["etag"].encode()) if m["lfs"] else m["etag"]}
                    if m["lfs"]:
                        sibling["lfs"] = {"size": m["size"], "sha256": m["etag"], "pointerSize": 134}
                    siblings.append(sibling)
                body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": commit, "siblings": siblings}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _file(self, repo_id: str, rev: str, name: str):
                found = server._resolve(repo_id, rev)
                if found is None:
                    return self._error(404, "RevisionNotFound", f"{repo_id}@{rev} not found")
                repo, commit = found
                if name not in repo.files or name.rsplit("/", 1)[-1] in server.deny:
                    return self._error(404, "EntryNotFound", f"{name} not in {repo_id}", commit)
                disk = repo.files[name]
                m = server.meta(disk)
                size = m["size"]
                start = 0
                if r := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
                    start = min(int(r.group(1)), size)
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{m["etag"]}"')
                if m["lfs"]:
                    self.send_header("X-Linked-Etag", f'"{m["etag"]}"')
                    self.send_header("X-Linked-Size", str(size))
                self.send_header("Accept-Ranges", "bytes")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                if self.command == "HEAD":
                    return
                with server._lock:
                    cut = server.cut_once.pop(name, None)
                with open(disk, "rb") as f:
                    f.seek(start)
                    left = size - start if cut is None else max(0, cut - start)
                    while left > 0 and (chunk := f.read(min(1 << 20, left))):
                        self.wfile.write(chunk)
                        left -= len(chunk)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # drop the connection mid-file

        return Handler

    def count(self, method: str | None = None, contains: str = "") -> int:
        return sum(1 for m, p, _, _ in self.requests if (method is None or m == method) and contains in p)
