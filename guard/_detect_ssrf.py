"""Server-side request forgery: URLs that make a fetching server reach what only it can reach.

Each URL is split by `urllib.parse.urlsplit` and its host judged by `ipaddress`: loopback,
private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), the
unspecified address, and anything else that is not global. Hosts written to slip past a
filter are read the way a resolver reads them: decimal, hex and octal IPv4 (`2130706433`,
`0x7f000001`, `0177.1`) through `socket.inet_aton`, IPv4 inside IPv6 (`::ffff:127.0.0.1`,
6to4), wildcard-DNS names that embed an address (`127.0.0.1.nip.io`), and names that mean
this machine (`localhost`, `*.localhost`, `localtest.me`). Cloud metadata services
(169.254.169.254, fd00:ec2::254, metadata.google.internal, 100.100.100.200) are critical
everywhere; an obfuscated private host is high everywhere (nobody writes `http://2130706433/`
innocently). A plain private or loopback URL is high where it would be fetched ("url") or
could be by an agent's tools ("prompt"), and low in free text, where `http://localhost:8000`
is how people describe their dev server. Schemes that reach local files or speak raw
protocols (`file:`, `gopher:`, `dict:`, `ldap:`, `tftp:`, `jar:`, `netdoc:`, `php:`) are high.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from ._issue import MAX_ISSUES, Issue, Severity

__all__ = ["find_ssrf"]

# URLs are found from their "://" (or ":\\") backwards to the scheme and forwards to the end:
# cheaper than a pattern that starts at every letter.
_SEPARATOR = re.compile(r":(?://|\\\\)")
_SCHEME = re.compile(r"(?<![\w+.-])[a-z][a-z0-9+.-]{0,15}$", re.I)
_REST = re.compile(r"[^\s<>\"'`{}|^]{0,2048}")
_MAX_URLS = 200
_BARE_METADATA = re.compile(r"(?<![\w.])(?:169\.254\.169\.254|169\.254\.170\.2|100\.100\.100\.200|fd00:ec2::254|"
                            r"metadata\.google\.internal|metadata\.goog|instance-data(?:\.ec2\.internal)?)"
                            r"(?P<path>/[^\s'\"<>]{0,200})?(?![\w.])", re.I)
_METADATA_HOSTS = frozenset({"169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254",
                             "metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                             "instance-data.ec2.internal", "metadata.azure.com", "metadata.packet.net"})
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", "localtest.me",
                          "lvh.me", "vcap.me", "lacolhost.com"})
_LOCAL_SUFFIXES = (".localhost", ".localtest.me", ".lvh.me", ".internal", ".local", ".home.arpa", ".intranet",
                   ".corp", ".lan", ".svc", ".cluster.local")
_EMBEDDED_IP = re.compile(r"(?:^|[.-])(\d{1,3}[.-]\d{1,3}[.-]\d{1,3}[.-]\d{1,3})\.(?:nip\.io|xip\.io|sslip\.io|"
                          r"traefik\.me|localtest\.me|xip\.name|nip\.direct)$")
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]+|\d+)(?:\.(?:0x[0-9a-f]+|\d+)){0,3}$", re.I)
_METADATA = "a cloud metadata service (instance credentials)"
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                              "fc00::/7")]
_RAW_SCHEMES = {"gopher": "speaks raw TCP to whatever it names", "dict": "speaks raw TCP to whatever it names",
                "ldap": "queries a directory server", "ldaps": "queries a directory server",
                "tftp": "fetches over TFTP", "jar": "makes Java fetch and unpack an archive",
                "netdoc": "reads local files in Java", "php": "reads local files and streams in PHP",
                "expect": "runs a command in PHP", "phar": "unpacks a PHP archive",
                "file": "reads the server's own files"}


def find_ssrf(text: str, context: str) -> list[Issue]:
    """SSRF targets in `text` (a normalised view)."""
    issues = []
    urls = list(_urls(text)) if "://" in text or ":\\\\" in text else []
    for start, url in urls:
        issue = _judge_url(url, (start, start + len(url)), context)
        if issue is not None:
            issues.append(issue)
    if context == "url" and not urls and text.strip():
        stripped = text.strip()
        start = text.find(stripped)
        issue = _judge_url("http://" + stripped.lstrip("/"), (start, start + len(stripped)), context)
        if issue is not None:
            issues.append(issue)
    lowered = text.lower()
    metadata = any(t in lowered for t in ("169.254.", "100.100.100.200", "fd00:ec2", "metadata", "instance-data"))
    for match in _BARE_METADATA.finditer(text) if metadata else ():
        if len(issues) < MAX_ISSUES and not any(i.span[0] <= match.start() < i.span[1] for i in issues):
            severity: Severity = "critical" if match.group("path") or context in ("url", "prompt") else "medium"
            issues.append(_issue(match.span(), f"{match.group()} is a cloud metadata service (instance credentials)",
                                 severity))
    return issues


def _urls(text: str) -> Iterator[tuple[int, str]]:
    """(offset, URL) for each `scheme://...` in `text`, trailing punctuation left out; at most
    _MAX_URLS of them."""
    found = 0
    for separator in _SEPARATOR.finditer(text):
        scheme = _SCHEME.search(text, max(0, separator.start() - 16), separator.start())
        if scheme is None:
            continue
        rest = _REST.match(text, separator.end())
        if rest is None:
            continue
        url = text[scheme.start():rest.end()].rstrip(".,;:!?)]")
        yield scheme.start(), url
        found += 1
        if found >= _MAX_URLS:
            return


def _judge_url(url: str, span: tuple[int, int], context: str) -> Issue | None:
    try:
        parts = urlsplit(url.replace("\\", "/"))
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme in _RAW_SCHEMES:
        sensitive = scheme != "file" or re.search(r"/(?:etc|proc|root|windows|users?/[^/]+/\.)", parts.path, re.I)
        severity: Severity = "high" if sensitive or context in ("url", "prompt") else "medium"
        return _issue(span, f"a {scheme}: URL {_RAW_SCHEMES[scheme]}", severity)
    if scheme not in ("http", "https", "ws", "wss", "ftp", "ftps", "sftp", "ssh", "smb", "redis", "mongodb",
                      "mysql", "postgres", "postgresql", "amqp", "telnet", "rtsp"):
        return None
    if not host:
        return None
    verdict = _judge_host(host.lower())
    if verdict is None:
        return None
    what, disguise, metadata = verdict
    reason = f"{host} is {disguise}, {what}" if disguise else f"{host} is {what}"
    if metadata:
        return _issue(span, reason, "critical")
    severity = "high" if disguise or context in ("url", "prompt") else "low"
    return _issue(span, reason, severity)


def _judge_host(host: str) -> tuple[str, str, bool] | None:
    """(what the host is, the address it disguises or '', whether it is a metadata service),
    or None for a public host."""
    host = host.split("%", 1)[0]  # an IPv6 zone id
    if host in _METADATA_HOSTS:
        return _METADATA, "", True
    if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
        return "a name for this machine or its private network", "", False
    disguise = ""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    embedded = _EMBEDDED_IP.search(host)
    try:
        if embedded:
            address = ipaddress.ip_address(re.sub(r"-", ".", embedded.group(1)))
            disguise = f"{address} behind a wildcard-DNS name"
        elif _NUMERIC_HOST.match(host):
            address = ipaddress.IPv4Address(socket.inet_aton(host))  # as resolvers read it
            if str(address) != host:
                disguise = f"{address} {_written(host)}"
        else:
            address = ipaddress.ip_address(host)
    except (ValueError, OSError):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            disguise = disguise or f"{inner} inside an IPv6 address"
            address = inner
    if str(address) in _METADATA_HOSTS:
        return _METADATA, disguise, True
    if address.is_global:
        return None
    return _kind(address), disguise, False


def _written(host: str) -> str:
    """How a numeric IPv4 host was written, for the reason."""
    parts = host.lower().split(".")
    if len(parts) == 1:
        return "written as one hex number" if parts[0].startswith("0x") else "written as one number"
    if any(p.startswith("0x") for p in parts):
        return "written in hex"
    if any(len(p) > 1 and p.startswith("0") for p in parts):
        return "written in octal"
    return "written in short form"


def _kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if address.is_loopback:
        return "a loopback address (this machine)"
    if address.is_unspecified:
        return "the unspecified address (this machine)"
    if address.is_link_local:
        return "a link-local address"
    if any(address in network for network in _PRIVATE if network.version == address.version):
        return "a private network address"
    return "a reserved, not a public, address"


def _issue(span: tuple[int, int], reason: str, severity: Severity) -> Issue:
    return Issue("ssrf", severity, span, f"SSRF: {reason}")
