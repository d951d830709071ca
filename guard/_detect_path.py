"""Path traversal: text that, used as a file path, reaches outside the directory meant for it.

Relative paths are everyday text (`../utils.py`, `../../components/Button`), so in free text
a traversal counts when it is deep (three levels or more), encoded (`%2e%2e%2f`, overlong
UTF-8 `%c0%af`, doubled `....//` to survive a filter that strips `../` once), cut with a NUL
byte, or aimed at a file an attacker wants (`/etc/passwd`, `.ssh/id_rsa`, `win.ini`,
`/proc/self/environ`, cloud and Kubernetes credentials). A sensitive absolute path on its
own ("what is /etc/shadow for?") is reported as low.

In the "path" context the text is a path to be joined under a base directory, and
`posixpath.normpath` decides: one that climbs above the base, is absolute (or a drive, a UNC
share, `~`), or holds a NUL byte is high; critical when it names a sensitive file.
"""

from __future__ import annotations

import posixpath
import re

from ._issue import MAX_ISSUES, Issue, Severity

__all__ = ["find_path_traversal"]

_SENSITIVE = re.compile(
    r"(?:^|[/\\])(?:etc[/\\](?:passwd|shadow|group|gshadow|sudoers|hosts|issue|crontab|master\.passwd|"
    r"ssh[/\\]|mysql[/\\]|nginx[/\\]|apache2?[/\\]|httpd[/\\]|environment|profile|bashrc)|proc[/\\]self[/\\]"
    r"(?:environ|cmdline|fd|maps|mem|cwd|root|status)|proc[/\\]\d+[/\\]environ|root[/\\]|\.ssh[/\\]|id_(?:rsa|dsa|"
    r"ecdsa|ed25519)\b|\.aws[/\\]credentials|\.kube[/\\]config|\.docker[/\\]config\.json|\.git[/\\](?:config|HEAD)|"
    r"\.env\b|\.htpasswd|\.htaccess|web\.config|wp-config\.php|var[/\\]run[/\\]secrets|var[/\\]log[/\\]|"
    r"boot\.ini|windows[/\\](?:win\.ini|system\.ini|system32[/\\])|winnt[/\\]|inetpub[/\\]|\.bash_history|"
    r"\.netrc|\.pgpass|\.npmrc|\.pypirc|config[/\\]database\.yml|sam\b)", re.I)
# A run of parent steps, each `..` (or more dots) then one or more slashes of either kind.
_STEPS = re.compile(r"(?<![\w.])(?:\.{2,}(?:;|%00|\x00)?[/\\]+){1,64}(?P<target>[^\s'\"<>|;&`)]{0,200})")
_ENCODED = re.compile(r"(?:%2e|%252e|%c0%ae|%e0%80%ae|%u002e|\.){2}(?:%2f|%5c|%252f|%255c|%c0%af|%c1%9c|%c1%1c|"
                      r"%e0%80%af|%u2215|%u2216|/|\\)", re.I)
_ENCODED_MARK = re.compile(r"%(?:2e|252e|c0|e0|c1|u00|u22|2f|5c|252f|255c)", re.I)
_NUL = re.compile(r"(?:%00|\x00|\\x00)(?=\.?\w{1,5}\b)")
_ABSOLUTE_SENSITIVE = re.compile(r"(?<![\w.~-])(?:/(?:etc/(?:passwd|shadow|sudoers|gshadow)|proc/self/\w+|root/\.ssh|"
                                 r"var/run/secrets/\S+)|[a-z]:\\windows\\(?:win\.ini|system32\\\S*))", re.I)


def find_path_traversal(text: str, context: str) -> list[Issue]:
    """Path traversal in `text` (a normalised view)."""
    if context == "path":
        return _as_path(text)
    issues: list[Issue] = []
    if ".." not in text and "%" not in text and "\x00" not in text and "/" not in text:
        return issues
    for match in _STEPS.finditer(text) if ".." in text else ():
        found = _traversal(match)
        if found is not None:
            issues.append(found)
    for match in _ENCODED.finditer(text) if "%" in text else ():
        if _ENCODED_MARK.search(match.group()):
            issues.append(_issue(match.span(), "an encoded '../' climbs out of the directory meant for the path",
                                 "high"))
    for match in _NUL.finditer(text) if "%00" in text or "\x00" in text else ():
        issues.append(_issue(match.span(), "a NUL byte cuts the path short of the extension a check saw", "high"))
    lowered = text.lower()
    sensitive = any(t in lowered for t in ("/etc/", "/proc/", "/root/", "/var/run/", "\\windows\\"))
    for match in _ABSOLUTE_SENSITIVE.finditer(text) if sensitive else ():
        if len(issues) < MAX_ISSUES and not any(i.span[0] <= match.start() < i.span[1] for i in issues):
            issues.append(_issue(match.span(), f"names the sensitive file {match.group()}", "low"))
    return issues


def _traversal(match: re.Match[str]) -> Issue | None:
    steps = match.group()[: match.start("target") - match.start()]
    levels = steps.count("..")
    target = match.group("target")
    severity: Severity
    if _SENSITIVE.search("/" + target):
        severity, reason = "critical", f"'{_short(steps)}' climbs {levels} directories up to {_short(target)}"
    elif re.search(r"\.{3,}|[/\\]{2}", steps):
        severity, reason = "high", f"'{_short(steps)}' is a traversal written to survive a filter that strips '../'"
    elif levels >= 3:
        severity, reason = "high", f"'{_short(steps)}' climbs {levels} directories up"
    elif levels == 2:
        severity, reason = "low", f"'{_short(steps)}' climbs {levels} directories up"
    else:
        return None  # one level up is how relative paths are written
    return _issue(match.span(), reason, severity)


def _as_path(text: str) -> list[Issue]:
    """The text is a path joined under a base directory: where does it end up?"""
    if "\x00" in text or "%00" in text:
        at = text.find("\x00") if "\x00" in text else text.find("%00")
        return [_issue((at, len(text)), "a NUL byte in a path cuts it short of what a check saw", "high")]
    path = text.replace("\\", "/").strip()
    sensitive = _SENSITIVE.search("/" + path) is not None
    reason = ""
    if re.match(r"(?:[a-z]:|/|~)", path, re.I):
        reason = "an absolute path ignores the directory it is joined to"
    elif posixpath.normpath(path).split("/")[0] == "..":
        reason = "'..' climbs above the directory the path is joined to"
    elif _ENCODED_MARK.search(path) and _ENCODED.search(path):
        reason = "an encoded '../' climbs above the directory the path is joined to"
    if reason:
        severity: Severity = "critical" if sensitive else "high"
        return [_issue((0, len(text)), reason + (" and names a sensitive file" if sensitive else ""), severity)]
    if sensitive:
        return [_issue((0, len(text)), "names a sensitive file", "medium")]
    return []


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _issue(span: tuple[int, int], reason: str, severity: Severity) -> Issue:
    return Issue("path_traversal", severity, span, f"path traversal: {reason}")
