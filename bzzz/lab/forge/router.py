"""Routes: a method and a path template (`/repos/{owner}/{repo}/issues/{number}`) to a handler.

`{name}` matches one path segment; `{name*}` matches the rest of the path, slashes
included, for branch and label names such as `bzzz/issue-7` that clients send unescaped.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from bzzz.lab.forge.rest import Handler, not_found

_PARAM = re.compile(r"\{(\w+)(\*?)\}")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, template: str, handler: Handler) -> Route:
    parts = []
    for segment in template.strip("/").split("/"):
        param = _PARAM.fullmatch(segment)
        if param is None:
            parts.append(re.escape(segment))
        else:
            parts.append(f"(?P<{param.group(1)}>{'.+' if param.group(2) else '[^/]+'})")
    return Route(method, re.compile("^/" + "/".join(parts) + "$"), handler)


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for a request and its path parameters, percent-decoded.

        A known path asked with another method is a 404, as on GitHub.
        """
        lookup = "GET" if method == "HEAD" else method
        for candidate in self.routes:
            if candidate.method != lookup:
                continue
            found = candidate.pattern.match(path)
            if found:
                params = {k: urllib.parse.unquote(v) for k, v in found.groupdict().items()}
                return candidate.handler, params
        raise not_found()
