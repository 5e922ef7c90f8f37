"""Root fixtures: Azurite and devhost helpers, and the integration/fuzz session fixtures.

Registered here (not imported into conftest modules) so that one Azurite and one local tenant serve every
directory of a session, or of each pytest-xdist worker (``make test`` runs ``-n`` workers with
``--dist loadfile``: a module's tests run on one worker, in order, and share its module fixtures).

The log scan (tests/integration/test_log_scan.py) reads the logs every other test produced, so it runs last
on its worker; in a parallel run the other workers are still writing theirs, so each worker also leaves its
evidence in the run's shared temp directory and the controller scans all of it once every worker has
finished (:func:`pytest_sessionfinish`): a leak anywhere fails the run.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.support.schedule import ModuleWeights, load_durations, module_of

pytest_plugins = ["tests.devhost.fixtures", "tests.integration.fixtures"]

EVIDENCE_DIR = "evidence"


def pytest_configure(config: pytest.Config) -> None:
    # xdist would reorder modules by their number of tests; the collection order below (slowest first)
    # is the one that keeps every worker busy to the end (tests/support/schedule.py).
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest modules first (tests/support/schedule.py), each module's tests in their order; the log
    scan reads the logs every other test produced, so it runs last."""
    weight = ModuleWeights(load_durations())
    items.sort(
        key=lambda item: (
            item.nodeid.startswith("tests/integration/test_log_scan.py"),
            -weight(module_of(item.nodeid)),
            module_of(item.nodeid),
        )
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection built (every module, test item and fixture definition, hypothesis and the
    SDKs): a full garbage collection no longer walks it. Those objects live to the end of the session
    anyway; what a test creates afterwards is collected as before. A worker's heap is large enough that its
    47 full collections of a run took 12 CPU-s of its 170 (gc.callbacks), and two more hold its exit."""
    gc.collect()
    gc.freeze()


def _run_root(config: pytest.Config) -> Path:
    """The run's temp root: a worker's basetemp is ``<root>/popen-gwN``; the controller's is the root."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return Path(base).parent if hasattr(config, "workerinput") else Path(base)


def _parallel(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not getattr(
        config.option, "collectonly", False
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        from tests.integration.fixtures import _EVIDENCE

        if _EVIDENCE.all_logs() or _EVIDENCE.secrets:
            worker = str(config.workerinput["workerid"])
            _EVIDENCE.dump(_run_root(config) / EVIDENCE_DIR / f"{worker}.json")
        return
    if not _parallel(config):
        return  # one process: test_log_scan ran last and saw everything
    dumps = sorted((_run_root(config) / EVIDENCE_DIR).glob("*.json"))
    if not dumps:
        return
    from tests.integration.fixtures import Evidence
    from tests.integration.test_log_scan import find_leaks

    evidence = Evidence.merged(dumps)
    logs = {str(p): p.read_text(encoding="utf-8", errors="replace") for p in evidence.logs if p.exists()}
    tokens = {token for token in evidence.tokens if len(token) > 40}
    leaks = find_leaks(logs, evidence.secrets, tokens)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        if reporter is not None:
            reporter.write_sep("=", "log scan of every worker: secrets or tokens in the logs", red=True)
            for leak in leaks:
                reporter.write_line(leak)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None:
        reporter.write_line(f"log scan of every worker: {len(logs)} logs, no secret and no token")
