"""Shell command injection: text that, pasted into a command line, runs commands of its own.

Shell snippets are ordinary in code reviews (`make && make install`, `export V=$(git
describe)`), so in free text only shapes that betray an attack count:

- a payload that is dangerous wherever it appears: a reverse shell, a fork bomb, wiping the
  root or home directory or a disk, a download piped into a shell (medium when it is a plain
  install line from an https URL, as install docs write them), `${IFS}` used as a space;
- an injection: a command operator (`;`, `&&`, `||`, `|`, `&`) right at the start of the
  text, right after a quote, or after a single value (`127.0.0.1; id`), followed by a
  command; command substitution (`$(...)`, backticks glued to a value) running a command
  that fetches, spies or destroys.

In the "shell" context the text is a value for a command line, and `shlex` (with
punctuation_chars) decides: any operator, redirection, substitution or newline outside
quotes is an injection.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from ._issue import MAX_ISSUES, Issue, Severity
from ._textview import hot_windows

__all__ = ["find_shell_injection"]

# Commands no prose word collides with: any argument will do.
_CMD_PLAIN = (r"(?:id|whoami|uname|hostname|ifconfig|ipconfig|netstat|printenv|nslookup|curl|wget|nc|ncat|netcat|"
              r"telnet|bash|sh|zsh|ksh|dash|csh|tcsh|python[23]?|perl|ruby|php|powershell|pwsh|cmd(?:\.exe)?|"
              r"mkfifo|scp|tftp|certutil|bitsadmin|systeminfo|tasklist|taskkill|pkill|killall|crontab|xxd|busybox|"
              r"socat|nohup|echo|whoami\.exe|ping|net\s+(?:user|localgroup|view|share))")
# Commands that are also English words: only with a shell-looking argument (-x, /path, ~, $V, a
# number, a quote, a drive) or nothing after them.
_CMD_WORDY = (r"(?:ls|dir|cat|type|more|head|tail|less|pwd|ps|env|sleep|rm|del|chmod|chown|touch|cp|mv|ssh|ftp|"
              r"net|kill|shutdown|reboot|halt|base64|find|awk|sed|xargs|sudo|su|eval|exec|openssl|dd|"
              r"mkfs(?:\.\w+)?|timeout|start|call|dig|host|reg)")
_ARGUMENT = r"(?=(?:\s+|%20|\+|\$\{IFS\})[-/.~$'\"\\%0-9]|\s+[a-z]:\\|\s*$|\s*[;&|`)])"  # %20, +: URL-encoded
_COMMANDS = rf"(?:{_CMD_PLAIN}(?=$|[\s;&|`)'\"<>%+])|{_CMD_WORDY}{_ARGUMENT})"
_SEP = r"(?:;|&&|\|\||\||&|%0a|\n)"  # between commands

# Dangerous wherever they appear; each with the words (lower case) every match holds one of
# (the pattern runs only around them).
_PAYLOADS: list[tuple[re.Pattern[str], str, Severity, tuple[str, ...]]] = [
    (re.compile(r"/dev/(?:tcp|udp)/[\w.\-]{1,253}/\d{1,5}|\b(?:nc|ncat|netcat)\b[^\n|;&]{0,80}\s-(?:e|c)\s*"
                r"(?:/bin/)?(?:ba|z|da)?sh\b|\bmkfifo\b[^\n]{0,120}\b(?:nc|ncat|netcat|telnet|openssl)\b|"
                r"\bsocat\b[^\n]{0,80}\bexec:|\bsocket\.socket\b[^\n]{0,200}\b(?:dup2|subprocess|pty\.spawn)|"
                r"\bfsockopen\s*\(|\bSystem\.Net\.Sockets\.TCPClient\b|\buse\s+Socket;[^\n]{0,200}\bexec\b", re.I),
     "opens a reverse shell to a remote host", "critical",
     ("/dev/tcp", "/dev/udp", " -e", " -c", "mkfifo", "socat", "socket", "fsockopen", "tcpclient")),
    (re.compile(r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"), "a fork bomb exhausts the machine", "critical",
     ("{",)),
    (re.compile(r"\brm\s+(?:-[a-zA-Z]*\s+)*-[a-zA-Z]*(?:r[a-zA-Z]*f|f[a-zA-Z]*r)[a-zA-Z]*\s+(?:-[-\w]+\s+)*"
                r"(?:/(?:\*|\s|$|[;&|)`'\"])|~/?(?:\s|$|[;&|)`'\"])|\$HOME\b|--no-preserve-root|/(?:etc|usr|var|"
                r"home|boot|bin)\b/?(?:\s|$))|\brm\s+--no-preserve-root\b", re.I),
     "deletes the root or home directory", "critical", ("rm ",)),
    (re.compile(r"\bmkfs(?:\.\w+)?\s+/dev/|\bdd\s+[^\n]{0,60}\bof=/dev/(?:sd|nvme|hd|xvd|vd|disk)|>\s*/dev/sd[a-z]\b",
                re.I),
     "overwrites a disk", "critical", ("/dev/",)),
    (re.compile(r"\$\{IFS\}|\$IFS\$\d|\{(?:cat|ls|id|nc|curl|wget),[^}\s]{1,100}\}"),
     "hides spaces from a filter (${IFS} or brace expansion)", "high", ("ifs", "{")),
    (re.compile(r"\b(?:IEX|Invoke-Expression)\b[^\n]{0,40}\bDownloadString\b|\bpowershell(?:\.exe)?\b[^\n]{0,40}"
                r"\s-(?:e|en|enc|encodedcommand)\s+[A-Za-z0-9+/=]{16,}|\bcertutil(?:\.exe)?\b[^\n]{0,40}"
                r"-urlcache\b[^\n]{0,40}-f\b|\bbitsadmin\b[^\n]{0,40}/transfer\b", re.I),
     "downloads and runs code (Windows)", "critical", ("iex", "invoke-expression", "powershell", "certutil",
                                                       "bitsadmin")),
]
_FETCH_PIPE = re.compile(r"\b(?:curl|wget|fetch)\b[^\n|;&]{0,200}?\|\s*(?:sudo\s+)?(?:(?:/usr)?/bin/)?"
                         r"(?:ba|z|da|k)?sh\b|\b(?:curl|wget)\b[^\n|;&]{0,200}?\|\s*(?:sudo\s+)?(?:python[23]?|"
                         r"perl|ruby|php|node)\b|\b(?:wget|curl)\b[^\n;&|]{0,200}[;&|]+\s*chmod\s+\+?[0-7]*x",
                         re.I)
_URL = re.compile(r"(https?)://([^/\s:'\"|]+)", re.I)
_IP_HOST = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$|^\[?[0-9a-f:]+\]?$", re.I)

# An injection: an operator at the start, or after one value (`127.0.0.1; id`), then a command.
# A newline counts only percent-encoded here (lines of prose start with words too).
_INJECTION = re.compile(rf"[ \t]*(?:(?P<value>['\"]?[^\s;&|`$()<>'\"]{{1,100}}['\"]?|['\"]{{1,2}})[ \t]*)?(?:\)[ \t]*)?"
                        rf"(?P<sep>;|&&|\|\||\||&|%0a)[ \t]*(?P<cmd>{_COMMANDS})", re.I)
# What a value looks like, as opposed to a command word (`pytest && echo ok` is a command line).
_VALUE_LIKE = re.compile(r"[\d./@=:'\"%\\-]")
# A quote glued to an operator closes the argument it was in: `'; cat /etc/passwd`.
_AFTER_QUOTE = re.compile(rf"['\"]\)?(?:;|&&|\|\||\|)[ \t]*{_COMMANDS}[^\n]{{0,200}}", re.I)
_RECON = r"(?:id|whoami|uname|hostname|ifconfig|ipconfig|systeminfo|net\s+user|cat\s+/etc/|type\s+c:)"
_REMOTE = r"(?:curl|wget|nc|ncat|netcat|nslookup|dig|ping|bash|sh|python[23]?|perl|rm|powershell)"
_SUB_DOLLAR = re.compile(rf"\$\(\s*(?:{_REMOTE}|{_RECON}|sleep)\b[^)\n]{{0,200}}\)?", re.I)
_SUB_BACKTICK = re.compile(rf"`\s*(?:{_REMOTE}|{_RECON}|sleep)\b[^`\n]{{0,200}}`", re.I)
# Backticks are Markdown code unless glued to a value: `name=`id``, `x`whoami``.
_GLUE = re.compile(r"[\w=/:.'\"-]")
_OPERATOR_CHAR = re.compile(r"[;&|]|%0a", re.I)
_DANGEROUS_SUB = re.compile(rf"^(?:\$\(|`)\s*(?:{_REMOTE})\b", re.I)

_SHELL_OPERATORS = frozenset(";&|<>()")
_SHELL_SPECIAL = re.compile(r"[;&|<>()`$'\"\\]")
_MAX_SHELL_VALUE = 16_384


def find_shell_injection(text: str, context: str) -> list[Issue]:
    """Shell injection in `text` (a normalised view)."""
    issues: list[Issue] = []
    lowered = text.lower()
    for pattern, reason, severity, triggers in _PAYLOADS:
        for start, end in hot_windows(lowered, triggers):
            issues.extend(_issue(match.span(), reason, severity) for match in pattern.finditer(text, start, end))
    for start, end in hot_windows(lowered, ("curl", "wget", "fetch"), 1, 420):
        issues.extend(_fetch_pipe(text, match) for match in _FETCH_PIPE.finditer(text, start, end))
    for match in _injections(text):
        value, sep, command = match.group("value", "sep", "cmd")
        if value and not _VALUE_LIKE.search(value) and sep == "&&" and not re.match(_RECON, command, re.I):
            continue
        issues.append(_issue((match.start("sep"), _line_end(text, match.end())), "a command operator starts "
                             f"another command ({_command_name(match.group())})", "high"))
    for match in _AFTER_QUOTE.finditer(text) if "'" in text or '"' in text else ():
        issues.append(_issue(match.span(), "a quote closes the argument and an operator starts another command "
                             f"({_command_name(match.group())})", "high"))
    substitutions = list(_SUB_DOLLAR.finditer(text)) if "$(" in text else []
    if "`" in text:
        substitutions += [m for m in _SUB_BACKTICK.finditer(text) if m.start() and _GLUE.match(text[m.start() - 1])]
    lead = len(text) - len(text.lstrip(" \t'\""))  # a substitution here is the whole value
    for match in substitutions[:MAX_ISSUES]:
        glued = match.start() > 0 and not text[match.start() - 1].isspace() and text[match.start() - 1] != "="
        alone = match.start() <= lead
        dangerous = _DANGEROUS_SUB.match(match.group()) is not None or context == "shell" or glued or alone
        issues.append(_issue(match.span(), f"command substitution runs {_command_name(match.group())}",
                             "high" if dangerous else "medium"))
    if context == "shell":
        issues.extend(_shell_value(text))
    return _dedupe(issues)


def _injections(text: str) -> Iterator[re.Match[str]]:
    """Lines that start with a value (or nothing) and a command operator, then a command:
    only lines with an operator in their first 110 characters are tried."""
    tried = set()
    for hit in _OPERATOR_CHAR.finditer(text):
        newline = text.rfind("\n", max(0, hit.start() - 111), hit.start())
        line = newline + 1 if newline >= 0 else (0 if hit.start() <= 111 else -1)
        if line < 0 or line in tried:
            continue
        tried.add(line)
        match = _INJECTION.match(text, line)
        if match:
            yield match


def _fetch_pipe(text: str, match: re.Match[str]) -> Issue:
    """A download piped into an interpreter: an attack when injected, hosted on a bare IP or
    fetched over plain http; an ordinary (medium) install line otherwise."""
    url = _URL.search(match.group())
    before = text[max(0, match.start() - 3):match.start()]
    injected = any(c in before for c in ";&|`(") or (match.start() > 0 and text[match.start() - 1] in "$`")
    plain = url is None or url.group(1).lower() == "http" or _IP_HOST.match(url.group(2)) is not None
    severity: Severity = "critical" if injected or plain else "medium"
    return _issue(match.span(), "downloads a script and runs it", severity)


def _shell_value(text: str) -> list[Issue]:
    """For text bound for a command line: operators, substitution, redirection or newlines
    outside quotes, as shlex tokenises them."""
    if "\n" in text or "\r" in text:
        at = min(i for i in (text.find("\n"), text.find("\r")) if i >= 0)
        return [_issue((at, len(text)), "a newline in a shell argument starts another command", "high")]
    if not _SHELL_SPECIAL.search(text):
        return []
    if len(text) > _MAX_SHELL_VALUE:  # shlex is pure Python: a value this long is refused, not read
        return [_issue((0, len(text)), f"a shell argument over {_MAX_SHELL_VALUE:,} characters holds shell "
                       "metacharacters", "high")]
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return [_issue((0, len(text)), "an unbalanced quote in a shell argument changes how the line parses",
                       "medium")]
    issues = []
    operators = [t for t in tokens if t and set(t) <= _SHELL_OPERATORS]
    if operators:
        at = max(text.find(operators[0]), 0)
        issues.append(_issue((at, len(text)), f"the shell operator '{operators[0]}' in a shell argument starts "
                             "another command or redirects", "high"))
    for mark in ("$(", "`", "${"):
        at = _unquoted_find(text, mark)
        if at >= 0:
            issues.append(_issue((at, len(text)), f"'{mark}' in a shell argument substitutes a command or variable",
                                 "high"))
    return issues


def _unquoted_find(text: str, mark: str) -> int:
    """Where `mark` first occurs outside single quotes (where the shell would expand it)."""
    if mark not in text:
        return -1
    quoted = False
    for i, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and text.startswith(mark, i):
            return i
    return -1


def _command_name(fragment: str) -> str:
    match = re.search(rf"(?:{_SEP}|\$\(|`)[ \t]*({_RECON}|{_REMOTE}|{_CMD_PLAIN}|{_CMD_WORDY})", fragment, re.I)
    return match.group(1).strip() if match else fragment.strip()[:20]


def _line_end(text: str, at: int) -> int:
    end = text.find("\n", at)
    return min(len(text) if end < 0 else end, at + 200)


def _issue(span: tuple[int, int], reason: str, severity: Severity) -> Issue:
    return Issue("shell_injection", severity, span, f"shell injection: {reason}")


def _dedupe(issues: list[Issue]) -> list[Issue]:
    """One issue per start offset: the most severe."""
    best: dict[int, Issue] = {}
    for issue in issues:
        kept = best.get(issue.span[0])
        if kept is None or _rank(issue) > _rank(kept):
            best[issue.span[0]] = issue
    return sorted(best.values(), key=lambda i: i.span)


def _rank(issue: Issue) -> int:
    return ("low", "medium", "high", "critical").index(issue.severity)
