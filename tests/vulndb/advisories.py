"""OSV records written by hand from the facts of real advisories (ids, packages, releases,
fixed versions), in the shape osv.dev publishes them."""

from __future__ import annotations

from typing import Any


def _ecosystem_range(*events: dict[str, str]) -> list[dict[str, Any]]:
    return [{"type": "ECOSYSTEM", "events": list(events)}]


def _debian(
    record_id: str,
    release: str,
    package: str,
    fixed: str,
    aliases: list[str],
    summary: str,
    urgency: str | None = None,
) -> dict[str, Any]:
    affected: dict[str, Any] = {
        "package": {"ecosystem": f"Debian:{release}", "name": package},
        "ranges": _ecosystem_range({"introduced": "0"}, {"fixed": fixed}),
    }
    if urgency:
        affected["ecosystem_specific"] = {"urgency": urgency}
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": "2024-09-04T05:00:00Z",
        "published": "2023-10-03T00:00:00Z",
        "aliases": aliases,
        "summary": summary,
        "affected": [affected],
    }


DEBIAN = [
    # Looney Tunables, fixed in bookworm by DSA-5514-1.
    _debian(
        "DSA-5514-1", "12", "glibc", "2.36-9+deb12u3", ["CVE-2023-4911"], "glibc - security update"
    ),
    _debian(
        "DSA-5532-1",
        "12",
        "openssl",
        "3.0.11-1~deb12u2",
        ["CVE-2023-5363"],
        "openssl - security update",
    ),
    _debian(
        "DSA-5764-1",
        "12",
        "openssl",
        "3.0.14-1~deb12u2",
        ["CVE-2024-6119"],
        "openssl - security update",
    ),
    # A bullseye advisory: must never match a bookworm image.
    _debian(
        "DLA-3530-1",
        "11",
        "openssl",
        "1.1.1n-0+deb11u5",
        ["CVE-2023-3446"],
        "openssl - LTS security update",
    ),
    # Still unfixed in bookworm: only an introduced event.
    {
        "id": "DEBIAN-CVE-2005-2541",
        "modified": "2024-09-01T00:00:00Z",
        "summary": "tar does not warn about setuid files",
        "aliases": ["CVE-2005-2541"],
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "tar"},
                "ranges": _ecosystem_range({"introduced": "0"}),
                "ecosystem_specific": {"urgency": "unimportant"},
            }
        ],
    },
]

ALPINE = [
    {
        "id": "ALPINE-CVE-2023-5363",
        "aliases": ["CVE-2023-5363"],
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "Alpine:v3.18", "name": "openssl"},
                "ranges": _ecosystem_range({"introduced": "0"}, {"fixed": "3.1.4-r0"}),
            }
        ],
    },
    {
        "id": "ALPINE-CVE-2023-4911",
        "aliases": ["CVE-2023-4911"],
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "Alpine:v3.19", "name": "musl"},
                "ranges": _ecosystem_range({"introduced": "0"}, {"fixed": "1.2.4_git20230717-r5"}),
            }
        ],
    },
]

PYPI = [
    {
        "id": "GHSA-9wx4-h78v-vm56",
        "aliases": ["CVE-2024-35195"],
        "modified": "2024-06-10T00:00:00Z",
        "summary": "Requests `Session` object does not verify requests after making first request "
        "with verify=False",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N"}],
        "database_specific": {"severity": "MODERATE"},
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": _ecosystem_range({"introduced": "0"}, {"fixed": "2.32.0"}),
            }
        ],
    },
    {
        "id": "GHSA-j8r2-6x86-q33q",
        "aliases": ["CVE-2023-32681"],
        "modified": "2023-06-01T00:00:00Z",
        "summary": "Unintended leak of Proxy-Authorization header in requests",
        "database_specific": {"severity": "MODERATE"},
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": _ecosystem_range({"introduced": "2.3.0"}, {"fixed": "2.31.0"}),
            }
        ],
    },
    # ReDoS in the `py` library: never fixed, last_affected 1.11.0.
    {
        "id": "PYSEC-2022-42969",
        "aliases": ["CVE-2022-42969"],
        "modified": "2022-10-20T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "py"},
                "ranges": _ecosystem_range({"introduced": "0"}, {"last_affected": "1.11.0"}),
            }
        ],
    },
    # Listed by explicit versions only.
    {
        "id": "PYSEC-2021-59",
        "aliases": ["CVE-2021-28363"],
        "modified": "2021-03-20T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "urllib3"},
                "versions": ["1.26.0", "1.26.1", "1.26.2", "1.26.3"],
            }
        ],
    },
    # Withdrawn: must be ignored.
    {
        "id": "GHSA-withdrawn-test",
        "withdrawn": "2024-01-01T00:00:00Z",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "Requests"},
                "ranges": _ecosystem_range({"introduced": "0"}),
            }
        ],
    },
]

GO = [
    # golang.org/x/text: unbounded memory in language.ParseAcceptLanguage (CVE-2022-32149).
    {
        "id": "GO-2022-1059",
        "aliases": ["CVE-2022-32149", "GHSA-69ch-w2m2-3vjp"],
        "modified": "2024-05-20T16:03:47Z",
        "published": "2022-10-11T17:16:13Z",
        "summary": "Denial of service via crafted Accept-Language header in golang.org/x/text",
        "affected": [
            {
                "package": {"ecosystem": "Go", "name": "golang.org/x/text"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.8"}]}],
            }
        ],
    },
    # HTTP/2 rapid reset in net/http (CVE-2023-39325): two fixed branches.
    {
        "id": "GO-2023-2102",
        "aliases": ["CVE-2023-39325", "GHSA-4374-p667-p6c8"],
        "modified": "2024-05-20T16:03:47Z",
        "published": "2023-10-11T22:14:40Z",
        "summary": "HTTP/2 rapid reset can cause excessive work in net/http",
        "affected": [
            {
                "package": {"ecosystem": "Go", "name": "stdlib"},
                "ranges": [
                    {
                        "type": "SEMVER",
                        "events": [
                            {"introduced": "0"},
                            {"fixed": "1.20.10"},
                            {"introduced": "1.21.0-0"},
                            {"fixed": "1.21.3"},
                        ],
                    }
                ],
            }
        ],
    },
]

NPM = [
    # lodash command injection via template (CVE-2021-23337).
    {
        "id": "GHSA-35jh-r3h4-6jhm",
        "aliases": ["CVE-2021-23337"],
        "modified": "2024-02-16T08:18:41Z",
        "published": "2021-05-06T16:05:51Z",
        "summary": "Command Injection in lodash",
        "database_specific": {"severity": "HIGH"},
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [
                    {"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}
                ],
            }
        ],
    },
    # semver ReDoS (CVE-2022-25883): one range per maintained major.
    {
        "id": "GHSA-c2qf-rxjj-qqgw",
        "aliases": ["CVE-2022-25883"],
        "modified": "2024-06-21T21:33:53Z",
        "published": "2023-06-21T06:30:28Z",
        "summary": "semver vulnerable to Regular Expression Denial of Service",
        "database_specific": {"severity": "MODERATE"},
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "semver"},
                "ranges": [
                    {"type": "SEMVER", "events": [{"introduced": "7.0.0"}, {"fixed": "7.5.2"}]}
                ],
            },
            {
                "package": {"ecosystem": "npm", "name": "semver"},
                "ranges": [
                    {"type": "SEMVER", "events": [{"introduced": "6.0.0"}, {"fixed": "6.3.1"}]}
                ],
            },
            {
                "package": {"ecosystem": "npm", "name": "semver"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "5.7.2"}]}],
            },
        ],
    },
]
