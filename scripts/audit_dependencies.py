"""Known vulnerabilities in the pinned requirements (pip-audit), with CI's contract:

    python scripts/audit_dependencies.py [--warn-only] [--osv-url URL] FILE

- a known vulnerability in a pin (or in what the pins pull in)  -> exit 1, CI red;
- a pin the vulnerability services could not answer for: PyPI or OSV unreachable, timing out
  or failing, or a package they do not know                      -> WARNING, exit 0;
- every pin audited, none vulnerable                             -> exit 0;
- anything else (a broken requirements file, pip-audit itself failing) -> exit 2, CI red: an
  audit that did not run for a reason nobody explained must not look like a pass.

``--warn-only`` (the dev tools, requirements-dev.txt): vulnerabilities are printed as a
warning, exit 0, except a malicious-package advisory (``MAL-...``), which fails either way.

How: pip resolves FILE once (``pip install --dry-run --report``, nothing is installed), so the
transitive dependencies (Flask, Werkzeug, protobuf, urllib3, ...) are audited too; then
``pip-audit --no-deps --disable-pip --format json`` asks PyPI's vulnerability data first and
OSV for whatever PyPI could not answer. The verdict is read from pip-audit's JSON output, not
from its exit code (1 means "vulnerable" and also "crashed"): no JSON plus a network error in
its output is "unreachable"; no JSON otherwise is an error.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("pypi", "osv")  # in order; OSV is asked only about what PyPI left unaudited
TIMEOUT_SECONDS = 15  # pip-audit's socket timeout per request
RUN_TIMEOUT_SECONDS = 600  # one pip or pip-audit run
MALICIOUS_PREFIX = "MAL-"  # OSV's malicious-package advisories: fail even with --warn-only
# What a failed connection, DNS lookup, TLS handshake or HTTP error leaves in pip's or
# pip-audit's output (requests / urllib3 exception names, pip's retry warnings, pip-audit's
# ServiceError for a non-2xx answer).
NETWORK_ERRORS = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Timeout\b|timed out|NameResolutionError|"
    r"Name or service not known|Temporary failure in name resolution|Max retries exceeded|"
    r"Connection refused|Connection reset|Network is unreachable|NewConnectionError|SSLError|"
    r"ProxyError|RemoteDisconnected|ServiceError|ConnectionBrokenError|"
    r"HTTP error 5\d\d|Status code 5\d\d|status 5\d\d|429 Too Many Requests",
)
EXIT_CLEAN, EXIT_VULNERABLE, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fix_versions: tuple[str, ...] = ()

    def line(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f"; fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "; no fix"
        return f"{self.package}=={self.version}: {self.id}{also}{fix}"


@dataclass(frozen=True)
class ServiceAnswer:
    """What one pip-audit run against one vulnerability service said."""

    service: str
    audited: frozenset[str] = frozenset()  # canonical names the service answered for
    vulnerabilities: tuple[Vulnerability, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # name -> pip-audit's reason
    unreachable: str | None = None  # why the service gave no answer at all
    error: str | None = None  # pip-audit failed for another reason


@dataclass(frozen=True)
class Verdict:
    kind: str  # "vulnerable", "clean", "unaudited", "error"
    vulnerabilities: tuple[Vulnerability, ...] = ()
    unaudited: Mapping[str, str] = field(default_factory=dict)  # name -> why
    error: str | None = None

    def exit_code(self, *, warn_only: bool = False) -> int:
        if self.kind == "error":
            return EXIT_ERROR
        if self.kind == "vulnerable":
            malicious = any(v.id.startswith(MALICIOUS_PREFIX) for v in self.vulnerabilities)
            return EXIT_VULNERABLE if malicious or not warn_only else EXIT_CLEAN
        return EXIT_CLEAN


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def network_error_in(output: str) -> str | None:
    """The first line of ``output`` that names a network failure, or None."""
    for line in output.splitlines():
        if NETWORK_ERRORS.search(line):
            return line.strip()[:300]
    return None


def read_service_answer(
    service: str, returncode: int, report: str | None, output: str
) -> ServiceAnswer:
    """Classify one pip-audit run from its JSON report (None: it wrote none) and its output."""
    if report:
        try:
            data = json.loads(report)
            dependencies = data["dependencies"]
        except (ValueError, KeyError, TypeError) as error:
            return ServiceAnswer(service, error=f"pip-audit wrote unreadable JSON: {error}")
        audited, skipped, found = set(), {}, []
        for dependency in dependencies:
            name = canonical(dependency["name"])
            if "skip_reason" in dependency:
                skipped[name] = dependency["skip_reason"]
                continue
            audited.add(name)
            for vuln in dependency.get("vulns", []):
                found.append(
                    Vulnerability(
                        name,
                        dependency.get("version", "?"),
                        vuln["id"],
                        tuple(vuln.get("aliases", ())),
                        tuple(vuln.get("fix_versions", ())),
                    )
                )
        if returncode not in (0, 1) or (returncode == 1 and not found):
            return ServiceAnswer(service, error=f"pip-audit exited {returncode}: {_tail(output)}")
        return ServiceAnswer(service, frozenset(audited), tuple(found), skipped)
    if (reason := network_error_in(output)) is not None:
        return ServiceAnswer(service, unreachable=reason)
    return ServiceAnswer(
        service, error=f"pip-audit exited {returncode} with no report: {_tail(output)}"
    )


def combine(pins: Mapping[str, str], answers: Iterable[ServiceAnswer]) -> Verdict:
    """One verdict for ``pins`` (canonical name -> version) from every service's answer."""
    answers = list(answers)
    for answer in answers:
        if answer.error is not None:
            return Verdict("error", error=f"{answer.service}: {answer.error}")
    vulnerabilities = tuple(v for answer in answers for v in answer.vulnerabilities)
    audited = set().union(*(answer.audited for answer in answers))
    unaudited = {}
    for name in sorted(set(pins) - audited):
        reasons = []
        for answer in answers:
            if answer.unreachable is not None:
                reasons.append(f"{answer.service} unreachable: {answer.unreachable}")
            elif name in answer.skipped:
                reasons.append(f"{answer.service}: {answer.skipped[name]}")
            else:
                reasons.append(f"{answer.service}: not asked")
        unaudited[name] = "; ".join(reasons) or "no service asked"
    if vulnerabilities:
        return Verdict("vulnerable", vulnerabilities, unaudited)
    return Verdict("unaudited" if unaudited else "clean", (), unaudited)


def resolve(requirements: Path) -> tuple[dict[str, str] | None, str]:
    """Every package ``pip install -r requirements`` would install: ({name: version}, "") or
    (None, pip's output) when pip could not resolve."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work, "report.json")
        done = subprocess.run(  # noqa: S603  this interpreter's pip on the file given, no shell
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
             "--quiet", "--disable-pip-version-check", "--report", str(report),
             "-r", str(requirements)],
            capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not report.exists():
            return None, done.stdout + done.stderr
        items = json.loads(report.read_text())["install"]
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in items}, ""


def audit_with(service: str, pins: Mapping[str, str], osv_url: str | None) -> ServiceAnswer:
    """One ``pip-audit --no-deps --disable-pip`` run on ``pins`` against ``service``."""
    with tempfile.TemporaryDirectory() as work:
        pinned, report = Path(work, "pins.txt"), Path(work, "report.json")
        pinned.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
        command = [
            str(Path(sys.executable).with_name("pip-audit")), "-r", str(pinned), "--no-deps",
            "--disable-pip", "--format", "json", "--output", str(report),
            "--progress-spinner", "off", "--timeout", str(TIMEOUT_SECONDS),
            "--vulnerability-service", service,
        ]  # fmt: skip
        if service == "osv" and osv_url:
            command += ["--osv-url", osv_url]
        try:
            done = subprocess.run(  # noqa: S603  the venv's pip-audit on pins written just above
                command, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            return ServiceAnswer(service, unreachable=f"no answer in {RUN_TIMEOUT_SECONDS} s")
        text = report.read_text() if report.exists() else None
        return read_service_answer(service, done.returncode, text, done.stdout + done.stderr)


def read_pins(requirements: Path) -> tuple[dict[str, str] | None, str]:
    """The file's own ``name==version`` lines, unresolved (``--no-resolve``)."""
    pins = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip()):
            return None, f"not a pin: {line!r} (--no-resolve takes name==version lines only)"
        pins[canonical(name.strip())] = version.strip()
    return pins, ""


def audit(
    requirements: Path,
    *,
    services: Sequence[str] = SERVICES,
    osv_url: str | None = None,
    resolved: bool = True,
) -> Verdict:
    pins, pip_output = resolve(requirements) if resolved else read_pins(requirements)
    if pins is None:
        if (reason := network_error_in(pip_output)) is not None:
            return Verdict("unaudited", unaudited={"*": f"PyPI unreachable to resolve: {reason}"})
        return Verdict("error", error=f"pip could not resolve {requirements}: {_tail(pip_output)}")
    answers: list[ServiceAnswer] = []
    left = dict(pins)
    for service in services:
        if not left:
            break
        answer = audit_with(service, left, osv_url)
        answers.append(answer)
        if answer.error is not None:
            break
        left = {name: version for name, version in left.items() if name not in answer.audited}
    return combine(pins, answers)


def report(verdict: Verdict, requirements: Path, *, warn_only: bool) -> str:
    lines = []
    if verdict.kind == "error":
        lines.append(f"audit: ERROR auditing {requirements}: {verdict.error}")
    for vuln in verdict.vulnerabilities:
        lines.append(f"audit: VULNERABLE {vuln.line()}")
    if verdict.unaudited:
        lines.append(
            f"audit: WARNING {len(verdict.unaudited)} package(s) of {requirements} could not be "
            f"audited (not a failure by itself): {', '.join(verdict.unaudited)}"
        )
        reasons = {re.sub(r": \S+ \([^)]*\)", "", why) for why in verdict.unaudited.values()}
        lines += [f"audit:   because {why}" for why in sorted(reasons)]
    code = verdict.exit_code(warn_only=warn_only)
    if verdict.kind == "vulnerable" and code == EXIT_CLEAN:
        lines.append(f"audit: WARNING {requirements}: vulnerabilities above (--warn-only)")
    if verdict.kind == "clean":
        lines.append(f"audit: {requirements}: no known vulnerabilities")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", type=Path)
    parser.add_argument("--warn-only", action="store_true", help="vulnerabilities: exit 0")
    parser.add_argument("--osv-url", help="another OSV query URL (the tests' local stand-in)")
    parser.add_argument(
        "--no-resolve", action="store_true", help="audit the file's own pins only, no pip"
    )
    parser.add_argument(
        "--service", action="append", choices=SERVICES, help="services to ask, in order"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    verdict = audit(
        args.requirements,
        services=args.service or SERVICES,
        osv_url=args.osv_url,
        resolved=not args.no_resolve,
    )
    print(report(verdict, args.requirements, warn_only=args.warn_only))
    code = verdict.exit_code(warn_only=args.warn_only)
    print(f"audit: {args.requirements}: {verdict.kind}, exit {code}, "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
