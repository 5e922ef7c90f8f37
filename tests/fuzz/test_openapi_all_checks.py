"""Schemathesis with every check (``schemathesis run --checks all``) against the live app: the OpenAPI
document must describe exactly what the app accepts (issue 17, "Also").

Beyond the per-operation fuzzing of test_openapi_fuzz.py (no 5xx, conformance of responses), ``all`` adds
the checks that hold the document to the code: ``positive_data_acceptance`` (no schema-valid request is
refused), ``negative_data_rejection`` (no schema-invalid request is accepted), ``missing_required_header``,
``unsupported_method``, ``ignored_auth`` (a protected operation refuses requests without credentials) and
the response-header checks. The CLI runs in its own process against a host of this module, with a valid
caller token, deterministic generation and a bounded number of cases, and writes a JUnit report whose
failures are read back by check.

The documented exceptions: an opaque ``cursor`` is a string to the schema, yet only an unchanged
``nextCursor`` is accepted (400 ``invalid_cursor`` otherwise, docs/errors.md): a refused schema-valid case
is tolerated only when it carries a ``cursor``. A stateful sequence that reads the audit trail and then
replays a ``messageId`` it found there is refused with a 400 when that id was a refused attempt's: the trail
records every attempt as the caller sent it (docs/mail-access.md), so such a replay is tolerated too. And
``unsupported_method`` expects a 405 for a method the
document does not declare (schemathesis sends TRACE), but no function of the app receives such a request:
the Functions host answers 404 itself (devhost/routing.py does as the host). Graph's webhooks answer a
post carrying ``validationToken`` with the token whatever its body holds (the handshake; Graph sends no body),
so a case invalid only in its body is echoed there.

``POST /api/reports/users`` is left out of the token run: every accepted case would queue a real report run
(tests/integration/test_report.py covers its inputs).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest
import requests

from tests.devhost.fixtures import DevHostProcess
from tests.integration.fixtures import Evidence, FreshHosts
from tests.support.apphost import Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 40
SEED = 17


class Failure(NamedTuple):
    operation: str
    check: str
    detail: str


class Run(NamedTuple):
    cases: int
    failures: list[Failure]
    output: str


@pytest.fixture(scope="module")
def all_checks_host(module_hosts: FreshHosts, local_tenant: LocalTenant) -> DevHostProcess:
    """The app with MAILBOX_SCOPE=* (every mailbox readable: mail cases reach Graph, not a scope 403)."""
    return module_hosts.start(local_tenant, "fuzz-all", overrides={"MAILBOX_SCOPE": "*"})


#: Schemathesis' failure codes (``st explain``) and the checks that report them.
CHECK_OF_CODE = {
    "ST100": "not_a_server_error",
    "ST101": "status_code_conformance",
    "ST102": "content_type_conformance",
    "ST103": "response_headers_conformance",
    "ST104": "response_schema_conformance",
    "ST201": "negative_data_rejection",
    "ST202": "positive_data_acceptance",
    "ST203": "missing_required_header",
    "ST204": "unsupported_method",
    "ST301": "ignored_auth",
}
#: A failure's code and its reproduction: every request of it, one ``curl`` line each (a stateful sequence
#: has several).
_FAILURE = re.compile(r"- (ST\d+) [^\n]*\n.*?Reproduce with:\s*\n((?:[ \t]*curl [^\n]*\n?)+)", re.S)


def documented_exception(failure: Failure) -> bool:
    """The failures the document cannot remove (module docstring): an opaque cursor refused, and a method
    no function declares, which the Functions host answers 404 before the app runs (devhost as the host)."""
    if failure.check == "negative_data_rejection" and "/api/graph/" in failure.detail:
        # Graph's validation handshake: a post with a validationToken is answered with the token whatever
        # else it carries (Graph sends none), so a case made invalid only in its body is still echoed.
        return "validationToken=" in failure.detail
    if failure.check == "positive_data_acceptance":
        sent = failure.detail.splitlines()
        replayed_audit_id = len(sent) > 1 and "/api/audit/mail" in sent[0] and "/messages/" in sent[-1]
        return "cursor=" in failure.detail or replayed_audit_id
    return failure.check == "unsupported_method" and failure.detail.startswith("curl -X TRACE")


def run_schemathesis(host: DevHostProcess, token: str, tmp: Path) -> Run:
    """``schemathesis run --checks all`` on the live document; the cases and failures of its report."""
    schema = tmp / "openapi.json"
    schema.write_text(json.dumps(requests.get(host.url("/api/openapi.json"), timeout=30).json()))
    junit = tmp / "junit.xml"
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", str(schema),
        "--url", host.base_url,
        "--checks", "all",
        "--header", f"Authorization: Bearer {token}",
        "--exclude-operation-id", "startUserReport",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-deterministic",
        "--no-shrink",
        "--continue-on-failure",
        "--workers", "1",
        "--request-timeout", "60",
        "--report", "junit,json", "--report-junit-path", str(junit),
        "--report-json-path", str(tmp / "run.json"),
        "--no-color",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=1500, check=False)
    output = done.stdout + done.stderr
    assert junit.exists(), output[-3000:]
    failures: list[Failure] = []
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own run's report
        for failed in [*case.iter("failure"), *case.iter("error")]:
            text = f"{failed.get('message') or ''}\n{failed.text or ''}"
            for code, curl in _FAILURE.findall(text):
                sent = "\n".join(line.strip() for line in curl.strip().splitlines())
                failures.append(Failure(str(case.get("name")), CHECK_OF_CODE.get(code, code), sent[:2000]))
    cases = int(json.loads((tmp / "run.json").read_text())["test_cases"]["generated"])
    return Run(cases, failures, output)


# schemathesis is one subprocess that sends every case in series (about 10 CPU-seconds of its own): on a
# loaded 2-core machine it outlasted the suite's 120 s per-test timeout once. Its own bound is the
# subprocess timeout above; the test's is set to match rather than cut the run short.
@pytest.mark.timeout(600)
def test_schemathesis_finds_the_document_exact(
    all_checks_host: DevHostProcess, caller: Caller, evidence: Evidence, tmp_path: Path
) -> None:
    token = caller.token()
    evidence.tokens.append(token)
    run = run_schemathesis(all_checks_host, token, tmp_path)
    by_check = Counter(failure.check for failure in run.failures)
    print(f"schemathesis --checks all: {run.cases} cases, failures by check: {dict(by_check)}")
    print(run.output[-6000:])
    unexpected = [failure for failure in run.failures if not documented_exception(failure)]
    assert unexpected == [], "\n\n".join(f"{f.operation} [{f.check}]\n{f.detail}" for f in unexpected[:8])
    assert run.cases > 0, run.output[-3000:]
