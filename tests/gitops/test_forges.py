"""The pull/merge request client against a GitHub- or GitLab-shaped REST API on loopback
(tests/forge_server.py): one request per head branch, updated on a rerun, and errors that name the
repository, the status, the API's message and what to do, without the token."""

from __future__ import annotations

import socket
import threading
import traceback

import pytest

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.gitops.forges import (
    GITHUB_BODY_LIMIT,
    GITLAB_BODY_LIMIT,
    ForgeConfig,
    ForgeError,
    PullRequest,
    forge_from_remote,
    open_or_update_pull_request,
)
from tests.forge_server import Answer, ForgeServer

TOKEN = "ghp_S3cretT0kenValue0123456789"
HEAD = "rai-pipelines/rollback/credit-scoring-ai/2.0.0"
GITLAB_PROJECT = "platform/gitops/deployments"


@pytest.fixture
def github():
    server = ForgeServer("github", TOKEN, "acme/gitops", branches=("main", HEAD))
    yield server
    server.stop()


@pytest.fixture
def gitlab():
    server = ForgeServer("gitlab", TOKEN, GITLAB_PROJECT, branches=("main", HEAD))
    yield server
    server.stop()


def github_forge(server: ForgeServer, token: str = TOKEN, repository: str = "acme/gitops") -> ForgeConfig:
    return ForgeConfig(kind="github", api_url=server.url, repository=repository, token=token)


def gitlab_forge(server: ForgeServer, token: str = TOKEN, repository: str = GITLAB_PROJECT) -> ForgeConfig:
    return ForgeConfig(kind="gitlab", api_url=server.url, repository=repository, token=token)


def open_pr(forge: ForgeConfig, title="Roll back credit-scoring-ai to 1.4.2", body="Evidence", **kwargs):
    return open_or_update_pull_request(forge, HEAD, "main", title, body, **kwargs)


def failure(forge: ForgeConfig, **kwargs) -> ForgeError:
    with pytest.raises(ForgeError) as caught:
        open_pr(forge, **kwargs)
    error = caught.value
    shown = "".join(traceback.format_exception(type(error), error, error.__traceback__)) + repr(error)
    assert TOKEN not in shown
    assert forge.repository in str(error)
    assert HEAD in str(error)
    return error


def test_github_opens_then_updates_the_same_pull_request(github):
    first = open_pr(github_forge(github), labels=("rai-rollback", "governance"))
    assert first == PullRequest(number=1, url="https://forge.example.com/acme/gitops/pull/1", created=True)

    second = open_pr(github_forge(github), title="Roll back credit-scoring-ai to 1.4.1", body="New evidence")
    assert second == PullRequest(number=1, url=first.url, created=False)

    assert [(c.method, c.path) for c in github.calls] == [
        ("GET", "/repos/acme/gitops/pulls"),
        ("POST", "/repos/acme/gitops/pulls"),
        ("POST", "/repos/acme/gitops/issues/1/labels"),
        ("GET", "/repos/acme/gitops/pulls"),
        ("PATCH", "/repos/acme/gitops/pulls/1"),
    ]
    search = github.calls[0].query
    assert search == {"state": "open", "head": f"acme:{HEAD}", "base": "main", "per_page": "100"}
    assert github.calls[1].json == {
        "title": "Roll back credit-scoring-ai to 1.4.2",
        "head": HEAD,
        "base": "main",
        "body": "Evidence",
        "maintainer_can_modify": False,
    }
    assert github.calls[2].json == {"labels": ["rai-rollback", "governance"]}
    assert github.calls[4].json == {"title": "Roll back credit-scoring-ai to 1.4.1", "body": "New evidence"}
    assert len(github.pulls) == 1
    assert github.pulls[1]["body"] == "New evidence"
    assert github.pulls[1]["labels"] == ["rai-rollback", "governance"]


def test_github_headers_are_the_documented_ones(github):
    open_pr(github_forge(github))
    for call in github.calls:
        assert call.headers["authorization"] == f"Bearer {TOKEN}"
        assert call.headers["accept"] == "application/vnd.github+json"
        assert call.headers["x-github-api-version"] == "2022-11-28"
        assert call.headers["user-agent"].startswith("rai-pipelines")
        assert "private-token" not in call.headers
    assert github.calls[1].headers["content-type"] == "application/json"


def test_gitlab_opens_then_updates_the_same_merge_request(gitlab):
    first = open_pr(gitlab_forge(gitlab), labels=("rai-rollback", "governance"))
    url = "https://forge.example.com/platform/gitops/deployments/-/merge_requests/1"
    assert first == PullRequest(number=1, url=url, created=True)

    second = open_pr(gitlab_forge(gitlab), title="Roll back to 1.4.1", body="New evidence", labels=("rai-rollback",))
    assert second == PullRequest(number=1, url=url, created=False)

    project = "/projects/platform%2Fgitops%2Fdeployments"
    assert [(c.method, c.path) for c in gitlab.calls] == [
        ("GET", f"{project}/merge_requests"),
        ("POST", f"{project}/merge_requests"),
        ("GET", f"{project}/merge_requests"),
        ("PUT", f"{project}/merge_requests/1"),
    ]
    search = gitlab.calls[0].query
    assert search == {"state": "opened", "source_branch": HEAD, "target_branch": "main", "per_page": "100"}
    assert gitlab.calls[1].json == {
        "source_branch": HEAD,
        "target_branch": "main",
        "title": "Roll back credit-scoring-ai to 1.4.2",
        "description": "Evidence",
        "remove_source_branch": True,
        "labels": "rai-rollback,governance",
    }
    update = {"title": "Roll back to 1.4.1", "description": "New evidence", "add_labels": "rai-rollback"}
    assert gitlab.calls[3].json == update
    for call in gitlab.calls:
        assert call.headers["private-token"] == TOKEN
        assert "authorization" not in call.headers
    assert len(gitlab.pulls) == 1
    assert gitlab.pulls[1]["labels"] == ["rai-rollback", "governance"]
    assert gitlab.pulls[1]["force_remove_source_branch"] is True


def test_a_closed_request_is_not_reused(github, gitlab):
    open_pr(github_forge(github))
    github.pulls[1]["state"] = "closed"
    assert open_pr(github_forge(github)) == PullRequest(2, "https://forge.example.com/acme/gitops/pull/2", True)

    open_pr(gitlab_forge(gitlab))
    gitlab.pulls[1]["state"] = "merged"
    assert open_pr(gitlab_forge(gitlab)).number == 2


def test_search_answers_for_other_branches_or_forks_are_not_reused(github, gitlab):
    def pull(number, head, base="main", owner="acme"):
        branch = {"ref": head, "label": f"{owner}:{head}"}
        html_url = f"https://x/{number}"
        return {"number": number, "html_url": html_url, "state": "open", "head": branch, "base": {"ref": base}}

    # A forge that ignored the filters: a fork's branch of the same name, another head, another base.
    github.scripted.append(Answer(200, [pull(7, HEAD, owner="fork"), pull(8, "other"), pull(9, HEAD, base="dev")]))
    assert open_pr(github_forge(github)).created is True
    assert [c.method for c in github.calls] == ["GET", "POST"]

    mr = {"iid": 7, "web_url": "https://x/7", "state": "opened", "source_branch": "other", "target_branch": "main"}
    gitlab.scripted.append(Answer(200, [mr, {**mr, "iid": 8, "source_branch": HEAD, "state": "merged"}]))
    assert open_pr(gitlab_forge(gitlab)).created is True
    assert [c.method for c in gitlab.calls] == ["GET", "POST"]


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_request_opened_by_another_run_meanwhile_is_updated(kind, github, gitlab):
    server, forge = (github, github_forge(github)) if kind == "github" else (gitlab, gitlab_forge(gitlab))
    open_pr(forge)
    server.hide_from_search = 1  # the search misses it, the create is refused as a duplicate
    again = open_pr(forge, body="second run")
    assert again.number == 1 and again.created is False
    assert [c.method for c in server.calls[-4:]] == ["GET", "POST", "GET", "PATCH" if kind == "github" else "PUT"]
    assert len(server.pulls) == 1


def test_labels_refused_after_the_create_are_reported_not_retried(github):
    created = {"number": 4, "html_url": "https://x/4", "state": "open", "head": {"ref": HEAD}, "base": {"ref": "main"}}
    refused = {"message": "Validation Failed", "errors": [{"resource": "Label", "code": "invalid", "field": "name"}]}
    github.scripted += [Answer(200, []), Answer(201, created), Answer(422, refused)]
    error = failure(github_forge(github), labels=("rai-rollback",))
    assert error.status == 422 and "add labels to pull request #4 (https://x/4)" in str(error)
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in github.calls] == [
        ("GET", "pulls"),
        ("POST", "pulls"),
        ("POST", "labels"),
    ]


def test_bad_token_is_401_and_never_shown(github, gitlab):
    wrong = "glpat-WrongTokenValue987654321"
    for forge in (github_forge(github, token=wrong), gitlab_forge(gitlab, token=wrong)):
        error = failure(forge)
        assert error.status == 401
        assert wrong not in str(error) and wrong not in repr(error)
        assert "invalid or expired" in str(error) and "check the secret" in str(error)
    assert "Bad credentials" in str(failure(github_forge(github, token=wrong)))
    assert "401 Unauthorized" in str(failure(gitlab_forge(gitlab, token=wrong)))


def test_a_token_the_api_echoes_back_is_scrubbed(github):
    github.scripted.append(Answer(401, {"message": f"token {TOKEN} was revoked"}))
    error = failure(github_forge(github))  # failure() asserts the token is nowhere in the exception
    assert "token *** was revoked" in str(error)


def test_missing_scope_is_403_naming_the_scope(github, gitlab):
    github.write_allowed = gitlab.write_allowed = False
    error = failure(github_forge(github))
    assert error.status == 403
    assert "Resource not accessible by personal access token" in str(error)
    assert "pull_requests: write" in str(error) and "`repo`" in str(error)
    error = failure(gitlab_forge(gitlab))
    assert error.status == 403
    assert "insufficient_scope" in str(error) and "`api` scope" in str(error)


def test_unknown_repository_is_404(github, gitlab):
    error = failure(github_forge(github, repository="acme/elsewhere"))
    assert error.status == 404
    assert "Not Found" in str(error) and "acme/elsewhere is not found or not visible to the token" in str(error)
    error = failure(gitlab_forge(gitlab, repository="platform/other"))
    assert error.status == 404
    assert "404 Project Not Found" in str(error) and "platform/other is not found" in str(error)


def test_github_validation_error_carries_the_api_message(github):
    github.no_commits.add(HEAD)
    error = failure(github_forge(github))
    assert error.status == 422
    assert "Validation Failed; No commits between main and " + HEAD in str(error)
    assert "create pull request" in str(error)


def test_github_validation_error_of_an_unpushed_head(github):
    github.branches.discard(HEAD)
    error = failure(github_forge(github))
    assert error.status == 422
    assert "resource=PullRequest field=head code=invalid" in str(error)
    assert "head branch must be pushed" in str(error)


def test_gitlab_unknown_source_branch_is_refused(gitlab):
    gitlab.branches.discard(HEAD)
    error = failure(gitlab_forge(gitlab))
    assert error.status == 422
    assert f'Source branch "{HEAD}" does not exist' in str(error)


def test_server_error_says_retry_later(github):
    github.scripted.append(Answer(500, {"message": "Server Error"}))
    error = failure(github_forge(github))
    assert error.status == 500
    assert "HTTP 500: Server Error" in str(error) and "unavailable: retry later" in str(error)


def test_rate_limit_says_retry_later(github):
    github.scripted.append(Answer(403, {"message": "API rate limit exceeded"}, {"X-RateLimit-Remaining": "0"}))
    error = failure(github_forge(github))
    assert error.status == 403 and "Rate limited" in str(error)


def test_a_server_that_never_answers_times_out(github):
    github.hang = True
    error = failure(github_forge(github), timeout=0.5)
    assert error.status is None
    assert "timed out" in str(error) and "retry later" in str(error)


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    forge = ForgeConfig(kind="github", api_url=f"http://127.0.0.1:{port}", repository="acme/gitops", token=TOKEN)
    error = failure(forge)
    assert error.status is None
    assert "connection refused" in str(error) and "unavailable: retry later" in str(error)


def test_an_answer_that_is_not_json(github):
    github.scripted.append(Answer(200, b"<html>Sign in</html>", {"Content-Type": "text/html"}))
    error = failure(github_forge(github))
    assert error.status == 200
    assert "not JSON (Content-Type text/html)" in str(error) and "api_url" in str(error)


def test_an_answer_of_the_wrong_shape_names_the_field(github, gitlab):
    github.scripted.append(Answer(200, [{"number": 3, "html_url": "https://x/3", "state": "open", "head": {}}]))
    error = failure(github_forge(github))
    assert "`[0].head.ref` is missing" in str(error)
    github.scripted.append(Answer(200, {"message": "not a list"}))
    assert "not a list of pull requests" in str(failure(github_forge(github)))
    gitlab.scripted += [Answer(200, []), Answer(201, {"iid": "7", "web_url": "https://x/7"})]
    assert "`iid` is str '7', not a positive integer" in str(failure(gitlab_forge(gitlab)))


def test_an_oversized_answer_is_refused(github):
    github.scripted.append(Answer(200, b"[" + b" " * (1024 * 1024) + b"]"))
    error = failure(github_forge(github))
    assert "larger than 1,048,576 bytes" in str(error)


def test_a_redirect_to_another_host_is_not_followed(github):
    elsewhere = ForgeServer("github", TOKEN, "acme/gitops", branches=("main", HEAD))
    try:
        github.scripted.append(Answer(302, b"", {"Location": f"{elsewhere.url}/repos/acme/gitops/pulls"}))
        error = failure(github_forge(github))
        assert error.status == 302
        assert "redirect" in str(error) and elsewhere.url in str(error) and "not followed" in str(error)
        assert elsewhere.calls == []
    finally:
        elsewhere.stop()


def test_github_body_is_cut_to_its_limit_with_a_note(github):
    open_pr(github_forge(github), body="x" * (GITHUB_BODY_LIMIT + 5000))
    sent = github.calls[1].json["body"]
    assert len(sent) == GITHUB_BODY_LIMIT
    assert sent.startswith("x" * 60_000)
    assert "(truncated: the first" in sent and "of 70,536 characters are shown)" in sent
    open_pr(github_forge(github), body="y" * GITHUB_BODY_LIMIT)
    assert github.calls[-1].json["body"] == "y" * GITHUB_BODY_LIMIT


def test_gitlab_body_limit_is_gitlabs(gitlab):
    open_pr(gitlab_forge(gitlab), body="x" * (GITHUB_BODY_LIMIT + 1))
    assert gitlab.calls[1].json["description"] == "x" * (GITHUB_BODY_LIMIT + 1)
    open_pr(gitlab_forge(gitlab), body="y" * (GITLAB_BODY_LIMIT + 1))
    sent = gitlab.calls[-1].json["description"]
    assert len(sent) == GITLAB_BODY_LIMIT and "(truncated" in sent


def test_concurrent_runs_leave_one_request(github):
    forge = github_forge(github)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(open_pr(forge))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and {r.number for r in results} == {1}
    assert len(github.pulls) == 1


@pytest.mark.parametrize(
    ("remote", "kind", "api_url", "repository"),
    [
        ("https://github.com/acme/gitops", "github", "https://api.github.com", "acme/gitops"),
        ("https://github.com/acme/gitops.git", "github", "https://api.github.com", "acme/gitops"),
        ("git@github.com:acme/gitops.git", "github", "https://api.github.com", "acme/gitops"),
        ("ssh://git@github.com/acme/gitops.git", "github", "https://api.github.com", "acme/gitops"),
        ("https://x-access-token:abc@github.com/acme/gitops.git", "github", "https://api.github.com", "acme/gitops"),
        ("https://gitlab.com/platform/gitops/deployments.git", "gitlab", "https://gitlab.com/api/v4", GITLAB_PROJECT),
        ("git@gitlab.com:platform/gitops/deployments.git", "gitlab", "https://gitlab.com/api/v4", GITLAB_PROJECT),
    ],
)
def test_forge_from_remote_infers_the_forge(remote, kind, api_url, repository):
    forge = forge_from_remote(remote, None, None, TOKEN)
    assert (forge.kind, forge.api_url, forge.repository, forge.token) == (kind, api_url, repository, TOKEN)


def test_forge_from_remote_of_a_self_hosted_forge_needs_kind_and_api_url():
    remote = "https://git.corp.example/platform/gitops.git"
    with pytest.raises(BadInputError, match="self-hosted host git.corp.example: set the forge kind"):
        forge_from_remote(remote, None, None, TOKEN)
    with pytest.raises(BadInputError, match="api_url"):
        forge_from_remote(remote, "gitlab", None, TOKEN)
    forge = forge_from_remote(remote, "gitlab", "https://git.corp.example/api/v4/", TOKEN)
    assert (forge.kind, forge.api_url) == ("gitlab", "https://git.corp.example/api/v4")
    assert forge.repository == "platform/gitops"
    # An explicit api_url wins on github.com too (GitHub's API seen through a test or a proxy).
    assert (
        forge_from_remote("git@github.com:a/b.git", None, "http://127.0.0.1:9", TOKEN).api_url == "http://127.0.0.1:9"
    )


@pytest.mark.parametrize(
    ("remote", "kind", "message"),
    [
        ("", None, "empty"),
        ("/srv/git/gitops.git", None, "local path has no forge"),
        ("file:///srv/git/gitops.git", None, "file:// remote has no forge"),
        ("https://github.com/acme/gitops.git", "gitlab", "a github host, but forge kind is 'gitlab'"),
        ("https://github.com/acme", None, "must be owner/name"),
        ("https://github.com/acme/gitops/extra", None, "must be owner/name"),
        ("https://gitlab.com/lonely.git", None, "group/project"),
        ("https://user:hunter2@github.com/acme", None, r"https://\*\*\*@github.com/acme"),
    ],
)
def test_forge_from_remote_refuses_what_it_cannot_read(remote, kind, message):
    with pytest.raises(BadInputError, match=message) as caught:
        forge_from_remote(remote, kind, None, TOKEN)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "bitbucket"}, "kind must be 'github' or 'gitlab'"),
        ({"api_url": "ftp://api.github.com"}, "http:// or https://"),
        ({"api_url": "https://user:pw@api.github.com"}, "must not carry credentials"),
        ({"api_url": "https://api.github.com\n"}, "whitespace"),
        ({"api_url": "https://api.github.com/?x=1"}, "query"),
        ({"repository": "acme"}, "owner/name"),
        ({"repository": "acme/gitops/extra"}, "owner/name"),
        ({"repository": "acme/../etc"}, "owner/name"),
        ({"repository": "acme/gitops.git"}, "without the .git"),
        ({"kind": "gitlab", "repository": "project"}, "group/project"),
        ({"token": ""}, "token must be non-empty"),
        ({"token": "abc def"}, "without whitespace"),
        ({"token": "abc\r\nX-Injected: 1"}, "without whitespace"),
    ],
)
def test_forge_config_refuses_bad_values(changes, message):
    values = {"kind": "github", "api_url": "https://api.github.com", "repository": "acme/gitops", "token": TOKEN}
    with pytest.raises(BadInputError, match=message) as caught:
        ForgeConfig(**{**values, **changes})
    assert "X-Injected" not in str(caught.value) and "pw@" not in str(caught.value)


def test_forge_config_hides_the_token():
    forge = ForgeConfig(kind="github", api_url="https://api.github.com/", repository="acme/gitops", token=TOKEN)
    assert TOKEN not in repr(forge) and TOKEN not in str(forge) and "token=***" in repr(forge)
    assert forge.api_url == "https://api.github.com"


def test_inputs_are_checked_before_any_call(github):
    forge = github_forge(github)
    for kwargs, message in [
        ({"title": ""}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"labels": ("a,b",)}, "commas"),
        ({"labels": "rai"}, "tuple"),
        ({"timeout": 0}, "timeout"),
    ]:
        with pytest.raises(BadInputError, match=message):
            open_pr(forge, **kwargs)
    with pytest.raises(BadInputError, match="same branch"):
        open_or_update_pull_request(forge, "main", "main", "t", "b")
    with pytest.raises(BadInputError, match="head branch"):
        open_or_update_pull_request(forge, "bad branch", "main", "t", "b")
    assert github.calls == []


def test_forge_error_is_a_gitops_error():
    assert issubclass(ForgeError, GitOpsError)
