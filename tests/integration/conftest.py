"""conftest.py - pytest wiring for mixspy's integration tests.

Interpreters are discovered once per session (in the xdist controller, before workers start; the
workers read the result back from build/integration/). Any test that takes the `interp` fixture runs
once per interpreter, with ids py2.7 ... py3.13, py3.11-debian, py3.14; an absent interpreter gives
a skip whose reason names it. Debian's /usr/bin/python3 is never skipped.

Fixtures:
  interp      harness.Interp for this run
  ext_dir     directory holding mixspy_testext built for interp (built once per session)
  start       start(interp_or_path, script, args) -> harness.Workload, waited on its ready file;
              every workload is checked not left stopped and then killed at teardown
"""
import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SESSION_ENV = "MIXSPY_IT_SESSION"


def _session_id():
    return os.environ[SESSION_ENV]


def pytest_configure(config):
    # The controller (or a plain run) picks the session id; xdist workers inherit it through the
    # environment, so they share the interpreter discovery and extension builds of this session.
    if not hasattr(config, "workerinput") and SESSION_ENV not in os.environ:
        os.environ[SESSION_ENV] = uuid.uuid4().hex
    config._mixspy_interps = harness.session_interpreters(_session_id())


def pytest_report_header(config):
    lines = []
    for i in config._mixspy_interps:
        if i.path:
            lines.append("  %-16s %s (%s)" % (i.id, i.path, ".".join(map(str, i.version))))
        else:
            lines.append("  %-16s SKIPPED: %s" % (i.id, i.skip or "absent"))
    return ["mixspy: %s" % harness.MIXSPY, "interpreters:"] + lines


def pytest_generate_tests(metafunc):
    if "interp" not in metafunc.fixturenames:
        return
    params = []
    for i in metafunc.config._mixspy_interps:
        marks = [pytest.mark.skip(reason=i.skip)] if i.skip else []
        params.append(pytest.param(i, id=i.id, marks=marks))
    metafunc.parametrize("interp", params)


@pytest.fixture(autouse=True)
def _interp_present(request):
    """An interpreter that is absent without a skip reason (Debian's python3) fails the test."""
    if "interp" in request.fixturenames:
        interp = request.getfixturevalue("interp")
        if interp.path is None:
            pytest.fail("%s is required but absent (%s)" % (interp.id, harness.DEBIAN_PYTHON),
                        pytrace=False)


@pytest.fixture(scope="session")
def session_id():
    return _session_id()


@pytest.fixture(scope="session")
def ext_builds(session_id):
    """interp -> build dir, memoised for the session (and across xdist workers by a stamp)."""
    cache = {}

    def get(interp):
        if interp.id not in cache:
            cache[interp.id] = harness.build_ext(interp, session_id)
        return cache[interp.id]
    return get


@pytest.fixture
def ext_dir(interp, ext_builds):
    return ext_builds(interp)


@pytest.fixture
def debian_interp(request):
    interps = [i for i in request.config._mixspy_interps if i.source == "debian"]
    if not interps or interps[0].path is None:
        pytest.fail("Debian's %s is required but absent" % harness.DEBIAN_PYTHON, pytrace=False)
    return interps[0]


@pytest.fixture
def start(tmp_path):
    """Start workloads; at teardown each live one must not be stopped, then all are killed."""
    started = []

    def _start(python, script, args=(), wait=True, name=None):
        path = python.path if isinstance(python, harness.Interp) else python
        return harness.start_workload(path, script, list(args), str(tmp_path), started,
                                      wait=wait, name=name)

    yield _start
    problems = []
    for w in started:
        if w.alive():
            try:
                harness.assert_not_stopped(w.pid)
            except AssertionError as e:
                problems.append(str(e))
        w.kill()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
