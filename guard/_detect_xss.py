"""Cross-site scripting: markup or URLs that run script when the text is shown as HTML.

Each tag is cut out with a bounded pattern and read by the stdlib's `html.parser` (which
decodes entities in attribute values, as a browser does: `&#106;avascript:` is
`javascript:`). A tag is an XSS when it can run script: `<script>`, a frame, plugin or `<base>`
element, an `on…=` event handler, a `javascript:`/`vbscript:`/`data:text/html` URL in a URL
attribute, script in `srcdoc` or in a `style` (`expression(`, `-moz-binding`). Outside tags:
a `javascript:` link (Markdown `[x](javascript:…)`), a quote that breaks out of an attribute
into a handler (`" onmouseover="…`), a quote that breaks out of a JavaScript string into a call
(`';alert(1)//`), client-side template injection (`{{constructor.constructor(…)()}}`), and
cookies sent away. Harmless markup (`<b>`, `<div class=…>`, `List<String>`) is not an issue.

In free text, a finding inside Markdown code (`` `<script>` `` or a fenced block) is medium: a
Markdown renderer shows code as text. In the "html" context nothing is discounted. The
sanitiser cleans what is found with nh3 (Ammonia), not with these patterns.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ._issue import MAX_ISSUES, Issue, Severity
from ._textview import hot_windows

__all__ = ["find_xss"]

_TAG = re.compile(r"<\s*(?P<name>[a-z][a-z0-9:-]{0,40})(?P<attrs>(?:[^<>\"'`]|\"[^\"]{0,4096}\"|'[^']{0,4096}'|"
                  r"`[^`]{0,4096}`){0,8192})(?:>|$|(?=<))", re.I)
_SCRIPT_TAGS = {"script": "a <script> element runs code", "iframe": "an <iframe> loads another document",
                "frame": "a <frame> loads another document", "frameset": "a <frameset> loads other documents",
                "object": "an <object> element loads a plugin or document", "embed": "an <embed> element loads a "
                "plugin", "applet": "an <applet> element runs a Java applet", "base": "a <base> element "
                "redirects every relative link", "portal": "a <portal> element loads another document",
                "import": "an <import> element loads code", "xss": "an <xss> element carries a handler"}
_URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "data", "xlink:href", "background", "poster",
                             "lowsrc", "dynsrc", "codebase", "cite", "longdesc", "content", "to", "from", "values",
                             "code", "archive", "srcset", "ping", "manifest", "icon", "profile", "usemap"})
_SCRIPT_URL = re.compile(r"^[\x00-\x20]*(?:j[\s]*a[\s]*v[\s]*a[\s]*s[\s]*c[\s]*r[\s]*i[\s]*p[\s]*t|vbscript|livescript|"
                         r"mocha)[\s]*:|^[\x00-\x20]*data[\s]*:[\s]*(?:text/html|image/svg\+xml|application/"
                         r"(?:x-)?(?:javascript|xhtml|ecmascript)|text/(?:javascript|xml))", re.I)
_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?\s*(?:javascript|vbscript|data)\s*:", re.I)
_STYLE_SCRIPT = re.compile(r"expression\s*\(|javascript\s*:|-moz-binding|behavior\s*:|@import", re.I)
_HANDLER = re.compile(r"on[a-z]{3,}", re.I)
_SUSPECT_ATTRIBUTES = re.compile(r"on|script|data|&|expression|binding|behavior|import|srcdoc|url|refresh|[\t\n\r]",
                                 re.I)

_LINK = re.compile(r"(?:\]\(\s*|(?:^|[\s=(\"'])(?:href|src|url|location(?:\.href)?|window\.open\()?(?:[=(]\s*)?"
                   r"[\"']?)(?P<url>(?:j[\t\n\r]*a[\t\n\r]*v[\t\n\r]*a[\t\n\r]*s[\t\n\r]*c[\t\n\r]*r[\t\n\r]*"
                   r"i[\t\n\r]*p[\t\n\r]*t|vbscript|livescript)[\t\n\r]*:(?!void\(0\)|;)[^\s)]{1,500})", re.I)
_ATTRIBUTE_BREAKOUT = re.compile(r"[\"'`]\s*(?:/\s*)?(?:\s|/)on[a-z]{3,}\s*=", re.I)
_STRING_BREAKOUT = re.compile(r"\\?['\"]\s*[-+;,*|&)]\s*(?:alert|prompt|confirm|eval|document\.write)\s*[(`]", re.I)
_TEMPLATE = re.compile(r"\{\{[^{}\n]{0,200}?(?:constructor|\$on|\$eval|\$parse|__proto__|\balert\s*\(|"
                       r"toString\(\)\.constructor)[^{}\n]{0,200}\}\}", re.I)
_COOKIE_THEFT = re.compile(r"(?:location(?:\.href)?\s*=|fetch\s*\(|new\s+Image|\.src\s*=|XMLHttpRequest|"
                           r"sendBeacon|\.open\s*\()[^\n;]{0,120}document\.cookie|document\.cookie[^\n;]{0,40}"
                           r"(?:fetch|sendBeacon|location|XMLHttpRequest)", re.I)
_INLINE_CODE = re.compile(r"`[^`\n]{1,2000}`")


class _Attributes(HTMLParser):
    """Reads the name and decoded attributes of one tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes = attrs


def find_xss(text: str, context: str) -> list[Issue]:
    """XSS in `text` (a normalised view)."""
    if "<" not in text and ":" not in text and "=" not in text and "{{" not in text and "'" not in text \
            and '"' not in text:
        return []
    issues = []
    if "<" in text:
        parser = _Attributes()
        for match in _TAG.finditer(text):
            reason = _tag_reason(match, parser)
            if reason:
                issues.append(_issue(_element_span(text, match), reason, "high"))
                if len(issues) >= MAX_ISSUES:
                    break
    lowered = text.lower()
    # Each pattern runs around the words its matches hold (a tab or newline inside "javascript"
    # is read past by browsers, so "script" is the word to look for).
    for pattern, reason, triggers, back, forward in (
            (_LINK, "a javascript: URL runs code when followed", ("script",), 40, 520),
            (_ATTRIBUTE_BREAKOUT, "a quote closes an attribute and adds an event handler", ("=",), 40, 4),
            (_STRING_BREAKOUT, "a quote breaks out of a JavaScript string into a call",
             ("alert", "prompt", "confirm", "eval", "document.write"), 12, 40),
            (_TEMPLATE, "client-side template injection reaches the Function constructor", ("{{",), 1, 420),
            (_COOKIE_THEFT, "script sends the page's cookies elsewhere", ("cookie",), 140, 60)):
        for match in (m for start, end in hot_windows(lowered, triggers, back, forward)
                      for m in pattern.finditer(text, start, end)):
            span = match.span("url") if "url" in pattern.groupindex else match.span()
            if len(issues) < MAX_ISSUES and not any(i.span[0] <= span[0] < i.span[1] for i in issues):
                issues.append(_issue(span, reason, "high"))
    if context == "text" and issues and "`" in text:
        issues = _discount_code(text, issues)
    return issues


def _tag_reason(match: re.Match[str], parser: _Attributes) -> str:
    name = match.group("name").lower()
    if name == "script":
        return _SCRIPT_TAGS[name]
    if not match.group("attrs").strip(" /"):
        return ""  # a bare <iframe> or <object> loads nothing ("the <iframe> element is blocked by CSP")
    if name in _SCRIPT_TAGS:
        return _SCRIPT_TAGS[name]
    if not _SUSPECT_ATTRIBUTES.search(match.group("attrs")):
        return ""  # no handler, script URL, entity or style that could hide one: skip the parser
    parser.reset()
    parser.attributes = []
    try:
        parser.feed(match.group() if match.group().endswith(">") else match.group() + ">")
        parser.close()
    except (AssertionError, ValueError):  # html.parser's complaints about malformed markup
        return ""
    for attribute, value in parser.attributes:
        handler = _HANDLER.match(attribute)
        if handler:
            return f"an {handler.group().lower()}= event handler runs code"
        value = value or ""
        if attribute in _URL_ATTRIBUTES and _SCRIPT_URL.match(value):
            return f"a script URL in {attribute}= runs code"
        if attribute == "srcdoc" and "<" in value:
            return "srcdoc= holds a document of its own"
        if attribute == "style" and _STYLE_SCRIPT.search(value):
            return "a style= attribute runs script"
        if name == "meta" and attribute == "content" and _REFRESH_URL.search(value):
            return "a <meta> refresh loads a script URL"
        if name == "link" and attribute == "rel" and value.lower() == "import":
            return "an HTML import loads code"
    return ""


def _element_span(text: str, match: re.Match[str]) -> tuple[int, int]:
    """The tag, and for elements whose content is code or a document, up to their end tag."""
    name = match.group("name").lower()
    if name in ("script", "iframe", "object", "applet", "style", "xss", "frameset", "svg", "math", "template"):
        close = re.compile(rf"</\s*{re.escape(name)}\s*>", re.I).search(text, match.end(), match.end() + 65536)
        if close:
            return match.start(), close.end()
    return match.span()


def _discount_code(text: str, issues: list[Issue]) -> list[Issue]:
    """In free text, findings inside Markdown code are medium: a renderer escapes code."""
    spans = _code_spans(text)
    out = []
    for issue in issues:
        inside = any(s <= issue.span[0] and issue.span[1] <= e for s, e in spans)
        out.append(_issue(issue.span, issue.reason.removeprefix("XSS: ") + " (inside Markdown code, shown as text)",
                          "medium") if inside else issue)
    return out


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Fenced blocks (``` to ```) and inline code spans outside them."""
    spans = []
    at = 0
    while (start := text.find("```", at)) >= 0:
        end = text.find("```", start + 3)
        end = len(text) if end < 0 else end + 3
        spans.append((start, end))
        at = end
    outside = [(0, len(text))] if not spans else [(0, spans[0][0])] + [
        (spans[i][1], spans[i + 1][0] if i + 1 < len(spans) else len(text)) for i in range(len(spans))]
    for start, end in outside:
        spans.extend(m.span() for m in _INLINE_CODE.finditer(text, start, end))
    return spans


def _issue(span: tuple[int, int], reason: str, severity: Severity) -> Issue:
    return Issue("xss", severity, span, f"XSS: {reason}")
