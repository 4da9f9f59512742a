"""A GitHub or GitLab REST API on loopback for the pull/merge request calls the rollback makes,
answering in the documented shapes and status codes, keeping its pull requests, and recording
every call (method, path, query, headers, JSON body) so a test can show what was sent where.

GitHub: GET/POST /repos/{owner}/{repo}/pulls, PATCH /repos/{owner}/{repo}/pulls/{number},
POST /repos/{owner}/{repo}/issues/{number}/labels. GitLab: GET/POST
/projects/{url-encoded path}/merge_requests, PUT /projects/{id}/merge_requests/{iid}.
A test can script the next answers (any status, headers, body) or make the server never answer.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GITHUB_DOCS = "https://docs.github.com/rest/pulls/pulls"


@dataclass
class Call:
    method: str
    path: str  # as sent, percent-encoding kept, without the query
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased
    json: Any


@dataclass
class Answer:
    status: int
    body: bytes | Any = b""  # bytes as they are, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)


class ForgeServer:
    def __init__(
        self,
        kind: str,
        token: str,
        repository: str,
        branches: tuple[str, ...] = ("main",),
        web_host: str = "https://forge.example.com",
    ):
        assert kind in ("github", "gitlab")
        self.kind, self.token, self.repository, self.web_host = kind, token, repository, web_host
        self.branches = set(branches)
        self.no_commits: set[str] = set()  # head branches with nothing to merge (GitHub refuses a PR)
        self.pulls: dict[int, dict] = {}
        self.calls: list[Call] = []
        self.scripted: list[Answer] = []  # answers for the next calls, in order, before any routing
        self.write_allowed = True  # False: the token may read but lacks the scope to write
        self.hide_from_search = 0  # the next searches miss every request (a race with another run)
        self.hang = False  # accept connections and never answer
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._next_number = 1
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = raw
                call = Call(
                    method=self.command,
                    path=path,
                    query=dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    json=payload,
                )
                with server._lock:
                    server.calls.append(call)
                    answer = server.scripted.pop(0) if server.scripted else None
                if server.hang:
                    server._release.wait(30)
                    self.close_connection = True
                    return
                if answer is None:
                    with server._lock:
                        answer = server._route(call, raw)
                body = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json; charset=utf-8", **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- routing -------------------------------------------------------------------------

    def _route(self, call: Call, raw: bytes) -> Answer:
        if self.kind == "github":
            return self._github(call, raw)
        return self._gitlab(call, raw)

    def _github(self, call: Call, raw: bytes) -> Answer:
        auth = call.headers.get("authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return Answer(401, {"message": "Bad credentials", "documentation_url": GITHUB_DOCS, "status": "401"})
        prefix = f"/repos/{self.repository}"
        if not call.path.startswith(prefix + "/"):
            return Answer(404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"})
        rest = call.path[len(prefix) :].split("/")[1:]
        if call.method != "GET" and not self.write_allowed:
            message = "Resource not accessible by personal access token"
            return Answer(403, {"message": message, "documentation_url": GITHUB_DOCS, "status": "403"})
        if call.method != "GET" and not isinstance(call.json, dict):
            return Answer(400, {"message": "Problems parsing JSON", "documentation_url": GITHUB_DOCS, "status": "400"})
        if rest == ["pulls"] and call.method == "GET":
            return Answer(200, [self._github_pull(n) for n in self._github_search(call.query)])
        if rest == ["pulls"] and call.method == "POST":
            return self._github_create(call.json)
        if len(rest) == 2 and rest[0] == "pulls" and rest[1].isdigit() and call.method == "PATCH":
            number = int(rest[1])
            if number not in self.pulls:
                return Answer(404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"})
            for key in ("title", "body", "state", "base"):
                if key in call.json:
                    self.pulls[number][key] = call.json[key]
            return Answer(200, self._github_pull(number))
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "labels" and call.method == "POST":
            number = int(rest[1]) if rest[1].isdigit() else 0
            if number not in self.pulls:
                return Answer(404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"})
            labels = self.pulls[number]["labels"]
            labels.extend(name for name in call.json.get("labels", []) if name not in labels)
            answer = [{"id": i + 1, "name": name, "color": "ededed", "default": False} for i, name in enumerate(labels)]
            return Answer(200, answer)
        return Answer(404, {"message": "Not Found", "documentation_url": GITHUB_DOCS, "status": "404"})

    def _github_search(self, query: dict[str, str]) -> list[int]:
        if self.hide_from_search:
            self.hide_from_search -= 1
            return []
        owner = self.repository.split("/")[0]
        state = query.get("state", "open")
        found = []
        for number, pr in sorted(self.pulls.items()):
            if state != "all" and pr["state"] != state:
                continue
            if "head" in query and query["head"] != f"{owner}:{pr['head']}":
                continue
            if "base" in query and query["base"] != pr["base"]:
                continue
            found.append(number)
        return found

    def _github_create(self, body: dict) -> Answer:
        missing = [key for key in ("head", "base") if not body.get(key)]
        if missing or not (body.get("title") or body.get("issue")):
            fields = missing or ["title"]
            errors = [{"resource": "PullRequest", "code": "missing_field", "field": key} for key in fields]
            return Answer(422, {"message": "Validation Failed", "errors": errors, "documentation_url": GITHUB_DOCS})
        head, base = body["head"], body["base"]
        owner = self.repository.split("/")[0]
        if head not in self.branches or base not in self.branches:
            bad = "head" if head not in self.branches else "base"
            errors = [{"resource": "PullRequest", "field": bad, "code": "invalid"}]
            return Answer(422, {"message": "Validation Failed", "errors": errors, "documentation_url": GITHUB_DOCS})
        if any(pr["state"] == "open" and pr["head"] == head and pr["base"] == base for pr in self.pulls.values()):
            message = f"A pull request already exists for {owner}:{head}."
            errors = [{"resource": "PullRequest", "code": "custom", "message": message}]
            return Answer(422, {"message": "Validation Failed", "errors": errors, "documentation_url": GITHUB_DOCS})
        if head == base or head in self.no_commits:
            errors = [{"resource": "PullRequest", "code": "custom", "message": f"No commits between {base} and {head}"}]
            return Answer(422, {"message": "Validation Failed", "errors": errors, "documentation_url": GITHUB_DOCS})
        number = self._take_number()
        self.pulls[number] = {
            "title": body["title"],
            "body": body.get("body"),
            "head": head,
            "base": base,
            "state": "open",
            "labels": [],
            "maintainer_can_modify": body.get("maintainer_can_modify", True),
        }
        return Answer(201, self._github_pull(number))

    def _github_pull(self, number: int) -> dict:
        pr = self.pulls[number]
        owner = self.repository.split("/")[0]
        repo = {"full_name": self.repository, "name": self.repository.split("/")[1]}
        return {
            "url": f"{self.url}/repos/{self.repository}/pulls/{number}",
            "id": 1000 + number,
            "number": number,
            "state": pr["state"],
            "title": pr["title"],
            "body": pr["body"],
            "html_url": f"{self.web_host}/{self.repository}/pull/{number}",
            "head": {"label": f"{owner}:{pr['head']}", "ref": pr["head"], "sha": "0" * 40, "repo": repo},
            "base": {"label": f"{owner}:{pr['base']}", "ref": pr["base"], "sha": "1" * 40, "repo": repo},
            "labels": [{"name": name} for name in pr["labels"]],
            "maintainer_can_modify": pr["maintainer_can_modify"],
        }

    def _gitlab(self, call: Call, raw: bytes) -> Answer:
        if call.headers.get("private-token") != self.token and call.headers.get("authorization") != (
            f"Bearer {self.token}"
        ):
            return Answer(401, {"message": "401 Unauthorized"})
        prefix = f"/projects/{urllib.parse.quote(self.repository, safe='')}"
        if not call.path.startswith(prefix + "/"):
            return Answer(404, {"message": "404 Project Not Found"})
        rest = call.path[len(prefix) :].split("/")[1:]
        if call.method != "GET" and not self.write_allowed:
            return Answer(
                403,
                {
                    "error": "insufficient_scope",
                    "error_description": "The request requires higher privileges than provided by the access token.",
                    "scope": "api",
                },
            )
        if call.method != "GET" and not isinstance(call.json, dict):
            return Answer(400, {"error": "400 Bad request - the body is not JSON"})
        if rest == ["merge_requests"] and call.method == "GET":
            return Answer(200, [self._gitlab_mr(n) for n in self._gitlab_search(call.query)])
        if rest == ["merge_requests"] and call.method == "POST":
            return self._gitlab_create(call.json)
        if len(rest) == 2 and rest[0] == "merge_requests" and rest[1].isdigit() and call.method == "PUT":
            iid = int(rest[1])
            if iid not in self.pulls:
                return Answer(404, {"message": "404 Not found"})
            mr = self.pulls[iid]
            for key in ("title", "description", "target_branch"):
                if key in call.json:
                    mr[key] = call.json[key]
            if "labels" in call.json:
                mr["labels"] = [x for x in call.json["labels"].split(",") if x]
            for name in (call.json.get("add_labels") or "").split(","):
                if name and name not in mr["labels"]:
                    mr["labels"].append(name)
            return Answer(200, self._gitlab_mr(iid))
        return Answer(404, {"error": "404 Not Found"})

    def _gitlab_search(self, query: dict[str, str]) -> list[int]:
        if self.hide_from_search:
            self.hide_from_search -= 1
            return []
        state = query.get("state", "all")
        found = []
        for iid, mr in sorted(self.pulls.items(), reverse=True):  # GitLab lists the newest first
            if state != "all" and mr["state"] != state:
                continue
            if "source_branch" in query and query["source_branch"] != mr["source_branch"]:
                continue
            if "target_branch" in query and query["target_branch"] != mr["target_branch"]:
                continue
            found.append(iid)
        return found

    def _gitlab_create(self, body: dict) -> Answer:
        for key in ("source_branch", "target_branch", "title"):
            if not body.get(key):
                return Answer(400, {"error": f"{key} is missing"})
        source, target = body["source_branch"], body["target_branch"]
        if source == target:
            return Answer(422, {"message": ["You can't use same project/branch for source and target"]})
        if source not in self.branches:
            return Answer(422, {"message": [f'Source branch "{source}" does not exist']})
        for iid, mr in self.pulls.items():
            if mr["state"] == "opened" and mr["source_branch"] == source:
                message = f"Another open merge request already exists for this source branch: !{iid}"
                return Answer(409, {"message": [message]})
        iid = self._take_number()
        self.pulls[iid] = {
            "title": body["title"],
            "description": body.get("description"),
            "source_branch": source,
            "target_branch": target,
            "state": "opened",
            "labels": [x for x in (body.get("labels") or "").split(",") if x],
            "force_remove_source_branch": bool(body.get("remove_source_branch")),
        }
        return Answer(201, self._gitlab_mr(iid))

    def _gitlab_mr(self, iid: int) -> dict:
        mr = self.pulls[iid]
        return {
            "id": 5000 + iid,
            "iid": iid,
            "project_id": 42,
            "title": mr["title"],
            "description": mr["description"],
            "state": mr["state"],
            "source_branch": mr["source_branch"],
            "target_branch": mr["target_branch"],
            "labels": list(mr["labels"]),
            "force_remove_source_branch": mr["force_remove_source_branch"],
            "web_url": f"{self.web_host}/{self.repository}/-/merge_requests/{iid}",
        }

    def _take_number(self) -> int:
        number, self._next_number = self._next_number, self._next_number + 1
        return number
