"""The JSON objects of the REST API, shaped and named as GitHub's.

Every object carries an absolute `url` under `/api/v3`: PyGithub builds its next calls
from it (`f"{issue.url}/comments"`) and completes partial objects by fetching it.
"""

from __future__ import annotations

import base64
import sqlite3
import urllib.parse
import zlib
from typing import Any

from bzzz.lab.forge.access import access, association
from bzzz.lab.forge.gitrepos import GitRepos
from bzzz.lab.forge.rest import Urls
from bzzz.lab.forge.store import issues, pulls, repos, users
from bzzz.lab.forge.store.records import Comment, Issue, Label, Pull, Repo, User, shown


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode()


def user(urls: Urls, u: User) -> dict[str, Any]:
    api = f"{urls.api}/users/{u.login}"
    return {
        "login": u.login,
        "id": u.id,
        "node_id": node_id("User", u.id),
        "avatar_url": "",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{urls.web}/{u.login}",
        "repos_url": f"{api}/repos",
        "type": "User",
        "site_admin": False,
    }


def full_user(db: sqlite3.Connection, urls: Urls, u: User) -> dict[str, Any]:
    return {
        **user(urls, u),
        "name": u.name,
        "email": u.email,
        "company": None,
        "blog": "",
        "location": None,
        "bio": None,
        "public_repos": len(repos.owned_by(db, u.id)),
        "followers": 0,
        "following": 0,
        "created_at": shown(u.created_at),
        "updated_at": shown(u.updated_at),
    }


def label(urls: Urls, repo: Repo, lab: Label) -> dict[str, Any]:
    name = urllib.parse.quote(lab.name, safe="")
    return {
        "id": lab.id,
        "node_id": node_id("Label", lab.id),
        "url": f"{urls.repo_api(repo.full_name)}/labels/{name}",
        "name": lab.name,
        "color": lab.color,
        "default": False,
        "description": lab.description or None,
    }


def repo(
    db: sqlite3.Connection, urls: Urls, r: Repo, caller: User | None, *, family: bool = True
) -> dict[str, Any]:
    """A repository; `family` adds `parent` and `source` for forks (not nested further)."""
    api = urls.repo_api(r.full_name)
    open_issues = db.execute(
        "SELECT COUNT(*) FROM issues WHERE repo_id = ? AND state = 'open'", (r.id,)
    ).fetchone()[0]
    forks = len(repos.forks_of(db, r.id))
    data: dict[str, Any] = {
        "id": r.id,
        "node_id": node_id("Repository", r.id),
        "name": r.name,
        "full_name": r.full_name,
        "owner": user(urls, r.owner),
        "private": False,
        "visibility": "public",
        "html_url": urls.repo_web(r.full_name),
        "description": r.description or None,
        "fork": r.parent_id is not None,
        "url": api,
        "forks_url": f"{api}/forks",
        "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "labels_url": f"{api}/labels{{/name}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "clone_url": urls.git(r.full_name),
        "git_url": urls.git(r.full_name),
        "svn_url": urls.repo_web(r.full_name),
        "created_at": shown(r.created_at),
        "updated_at": shown(r.updated_at),
        "pushed_at": shown(r.pushed_at),
        "default_branch": r.default_branch,
        "archived": False,
        "disabled": False,
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "forks_count": forks,
        "forks": forks,
        "open_issues_count": open_issues,
        "open_issues": open_issues,
        "watchers_count": 0,
        "stargazers_count": 0,
        "permissions": access(db, r, caller).as_json(),
    }
    if family and r.parent_id is not None and r.source_id is not None:
        data["parent"] = repo(db, urls, repos.by_id(db, r.parent_id), caller, family=False)
        data["source"] = repo(db, urls, repos.by_id(db, r.source_id), caller, family=False)
    return data


def issue(db: sqlite3.Connection, urls: Urls, r: Repo, i: Issue) -> dict[str, Any]:
    api = f"{urls.repo_api(r.full_name)}/issues/{i.number}"
    web = urls.repo_web(r.full_name)
    author = users.by_id(db, i.user_id)
    assigned = [user(urls, a) for a in issues.assignees(db, i.id)]
    data: dict[str, Any] = {
        "id": i.id,
        "node_id": node_id("PullRequest" if i.is_pull else "Issue", i.id),
        "url": api,
        "repository_url": urls.repo_api(r.full_name),
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{web}/pull/{i.number}" if i.is_pull else f"{web}/issues/{i.number}",
        "number": i.number,
        "state": i.state,
        "state_reason": i.state_reason,
        "title": i.title,
        "body": i.body,
        "user": user(urls, author),
        "labels": [label(urls, r, lab) for lab in issues.labels(db, i.id)],
        "assignee": assigned[0] if assigned else None,
        "assignees": assigned,
        "milestone": None,
        "locked": i.locked,
        "active_lock_reason": i.lock_reason,
        "comments": issues.comment_count(db, i.id),
        "created_at": shown(i.created_at),
        "updated_at": shown(i.updated_at),
        "closed_at": None if i.closed_at is None else shown(i.closed_at),
        "author_association": association(db, r, i.user_id),
    }
    if i.is_pull:
        pull_api = f"{urls.repo_api(r.full_name)}/pulls/{i.number}"
        data["pull_request"] = {
            "url": pull_api,
            "html_url": f"{web}/pull/{i.number}",
            "diff_url": f"{web}/pull/{i.number}.diff",
            "patch_url": f"{web}/pull/{i.number}.patch",
            "merged_at": None,
        }
        data["draft"] = pull_of(db, i).draft
    return data


def comment(db: sqlite3.Connection, urls: Urls, r: Repo, c: Comment) -> dict[str, Any]:
    number = issues.by_id(db, c.issue_id).number
    return {
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "url": f"{urls.repo_api(r.full_name)}/issues/comments/{c.id}",
        "html_url": f"{urls.repo_web(r.full_name)}/issues/{number}#issuecomment-{c.id}",
        "issue_url": f"{urls.repo_api(r.full_name)}/issues/{number}",
        "body": c.body,
        "user": user(urls, users.by_id(db, c.user_id)),
        "created_at": shown(c.created_at),
        "updated_at": shown(c.updated_at),
        "author_association": association(db, r, c.user_id),
    }


def head_sha(db: sqlite3.Connection, git: GitRepos, p: Pull) -> str:
    """The head branch's commit now (pushes move it); the last one seen if it is gone."""
    head_repo = repos.by_id(db, p.head_repo_id)
    sha = git.branch_sha(git.path(head_repo.owner.login, head_repo.name), p.head_ref)
    return p.head_sha if sha is None else sha


def pull(
    db: sqlite3.Connection, urls: Urls, git: GitRepos, r: Repo, i: Issue, *, caller: User | None
) -> dict[str, Any]:
    p = pull_of(db, i)
    api = f"{urls.repo_api(r.full_name)}/pulls/{i.number}"
    web = f"{urls.repo_web(r.full_name)}/pull/{i.number}"
    as_issue = issue(db, urls, r, i)
    head_repo = repos.by_id(db, p.head_repo_id)
    base_sha = git.branch_sha(git.path(r.owner.login, r.name), p.base_ref) or p.base_sha
    return {
        "id": i.id,
        "node_id": as_issue["node_id"],
        "url": api,
        "html_url": web,
        "diff_url": f"{web}.diff",
        "patch_url": f"{web}.patch",
        "issue_url": as_issue["url"],
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "comments_url": as_issue["comments_url"],
        "number": i.number,
        "state": i.state,
        "locked": i.locked,
        "title": i.title,
        "user": as_issue["user"],
        "body": i.body,
        "labels": as_issue["labels"],
        "milestone": None,
        "assignee": as_issue["assignee"],
        "assignees": as_issue["assignees"],
        "requested_reviewers": [],
        "created_at": shown(i.created_at),
        "updated_at": shown(i.updated_at),
        "closed_at": None if i.closed_at is None else shown(i.closed_at),
        "merged_at": None,
        "merge_commit_sha": None,
        "draft": p.draft,
        "head": _part(db, urls, head_repo, p.head_ref, head_sha(db, git, p), caller=caller),
        "base": _part(db, urls, r, p.base_ref, base_sha, caller=caller),
        "author_association": as_issue["author_association"],
        "merged": False,
        "mergeable": None,
        "mergeable_state": "unknown",
        "merged_by": None,
        "comments": as_issue["comments"],
        "review_comments": 0,
        "maintainer_can_modify": False,
    }


def _part(
    db: sqlite3.Connection, urls: Urls, r: Repo, ref: str, sha: str, *, caller: User | None
) -> dict[str, Any]:
    return {
        "label": f"{r.owner.login}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user(urls, r.owner),
        "repo": repo(db, urls, r, caller, family=False),
    }


def pull_of(db: sqlite3.Connection, i: Issue) -> Pull:
    p = pulls.of_issue(db, i.id)
    if p is None:
        raise LookupError(f"issue {i.id} is marked a pull request but has no head and base")
    return p


def branch(urls: Urls, r: Repo, name: str, sha: str) -> dict[str, Any]:
    api = urls.repo_api(r.full_name)
    return {
        "name": name,
        "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
        "protected": False,
        "_links": {
            "self": f"{api}/branches/{urllib.parse.quote(name, safe='')}",
            "html": f"{urls.repo_web(r.full_name)}/tree/{name}",
        },
    }


def git_ref(urls: Urls, r: Repo, ref: str, sha: str) -> dict[str, Any]:
    api = urls.repo_api(r.full_name)
    return {
        "ref": ref,
        "node_id": node_id("Ref", zlib.crc32(f"{r.id}:{ref}".encode())),
        "url": f"{api}/git/{ref}",
        "object": {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"},
    }
