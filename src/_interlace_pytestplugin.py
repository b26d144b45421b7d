"""interlace's pytest plugin (registered under ``pytest11``): explorations as tests.

Two ways to write an interlace test.

A marked async test is explored: its body runs as the root task of every
schedule, its fixtures' values are passed to each run, its asserts are the
invariants (``interlace.always(check)`` adds checks before every decision)::

    @pytest.mark.interlace(schedules=100)
    async def test_withdrawals() -> None:
        account = Account(balance=100)
        await asyncio.gather(withdraw(account, 30), withdraw(account, 50))
        assert account.balance == 20

A simulation (``@interlace.simulation``) whose name is a test name is
collected as one test per database, ``test_chat[sqlite]`` and
``test_chat[postgres]``, judged like ``interlace run`` judges it (canaries,
sometimes invariants); PostgreSQL comes from the provider chain
(``interlace.db.provider``) and its tests skip when there is none (fail,
with ``INTERLACE_REQUIRE_POSTGRES=1``).

Fixtures: ``interlace_postgres`` (the session's PostgreSQL server from the
provider chain, started on first use, shared with the simulation tests) and
``interlace_postgres_database`` (a fresh database on it for the session,
configured for simulation, dropped afterwards): its ``.url`` goes to
``create_async_engine`` as it is (``postgresql+asyncpg://``), its ``.dsn`` to
``asyncpg.connect`` (``postgresql://``). Without a server they skip with the
reason, or fail with ``INTERLACE_REQUIRE_POSTGRES=1``. Lock waits on
PostgreSQL need nothing more: interlace watches every asyncpg connection the
test's tasks use (``lock_monitor=False`` on the marker turns that off).

Options (group "interlace"); a marker's keyword wins over the default, an
option given on the command line wins over both:

- ``--interlace-schedules N`` (default 100), ``--interlace-strategy NAME``
  (default portfolio);
- ``--interlace-seed N|random``: 0 by default so CI is reproducible;
  ``random`` picks one per session and prints it;
- ``--interlace-replay TOKEN``: run only the test the token's scenario
  names, replaying that one schedule;
- ``--interlace-html DIR``: write one self-contained HTML report of the
  session's interlace tests into DIR (summary, coverage growth, swimlanes of
  every failure); ``--interlace-sarif FILE``: their findings as SARIF 2.1.0.
  Both are rendered from the outcomes the tests already have (the renderers
  of ``interlace.report``, imported only when asked for).

A failing test reports the invariant and its message, the interleaving
table (one column per task, one row per decision, ``*`` = preemption), the
token and the command that replays it; in JUnit XML the token is also a
property of the test case (``interlace_token``).

The marked test is run by this plugin's ``pytest_pyfunc_call`` (tryfirst),
synchronously on interlace's own loop, so pytest-asyncio never runs it
(even in auto mode, where it wraps the function: the plugin unwraps it),
and plain pytest-asyncio tests are left alone.

This module is loaded by every pytest run in an environment where interlace
is installed. Like hypothesis's ``_hypothesis_pytestplugin`` it is a top-level
module that imports only pytest at import time (importing ``interlace``
would import SQLAlchemy, asyncpg and the rest): the engine is imported inside
the hooks, once an interlace test is found.

Outcomes are the engine's (``interlace.outcome``): a finding fails the test
with its report and token; a usage or setup error fails it with one short
message (no traceback, nothing to replay); an internal error of interlace
says so, with the token and traceback for the bug report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from interlace.config import Config
    from interlace.db.provider import PostgresDatabase, PostgresServer
    from interlace.db.supply import DatabaseKind, DatabaseSupply
    from interlace.expectation import Expectation
    from interlace.outcome import ExploreReport, Failure, Problem, SimulationRun
    from interlace.scenario import Scenario
    from interlace.simulations import Simulation

MARKER = "interlace"
DEFAULT_SCHEDULES = 100
DEFAULT_STRATEGY = "portfolio"
_MARKER_KEYWORDS = frozenset({"schedules", "strategy", "seed", "expect_violation", "lock_monitor"})


@dataclasses.dataclass
class _Settings:
    """The run's interlace options, resolved once at configure time."""

    schedules: int | None  # None: the marker's, else DEFAULT_SCHEDULES
    strategy: str | None  # None: the marker's, else DEFAULT_STRATEGY
    seed: int | None  # None: the marker's, else the session seed
    session_seed: int
    seed_was_random: bool
    replay: str | None  # a token: run only its test, that one schedule
    replay_scenario: str | None
    full: bool  # interleaving tables show their folded rows too


@dataclasses.dataclass
class _Reports:
    """What ``--interlace-html`` and ``--interlace-sarif`` render at the end of the session."""

    html: Path | None
    sarif: Path | None
    # wall clock for the report's "started" and "elapsed" only: no decision sees it
    started: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    clock: float = dataclasses.field(default_factory=time.monotonic)
    #: every interlace test's outcome, in the order they ran
    runs: list[SimulationRun] = dataclasses.field(default_factory=list)
    #: scenario name -> the node id that replays it (the reports' replay command)
    nodes: dict[str, str] = dataclasses.field(default_factory=dict)
    #: the files written (or why one could not be), for the terminal summary
    written: list[str] = dataclasses.field(default_factory=list)

    @property
    def wanted(self) -> bool:
        return self.html is not None or self.sarif is not None


_SETTINGS = pytest.StashKey[_Settings]()
_DATABASES = pytest.StashKey["_Databases"]()
_REPORTS = pytest.StashKey[_Reports]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("interlace", "interlace: explore interleavings of async tests")
    group.addoption(
        "--interlace-schedules",
        type=int,
        default=None,
        metavar="N",
        help=f"schedules per interlace test (default: the marker's, else {DEFAULT_SCHEDULES})",
    )
    group.addoption(
        "--interlace-strategy",
        default=None,
        metavar="NAME",
        help=f"random, pct, pct<d>, dfs, dfs<b>, portfolio (default: {DEFAULT_STRATEGY})",
    )
    group.addoption(
        "--interlace-seed",
        default=None,
        metavar="N|random",
        help="seed of every exploration (default: 0, fixed so CI is reproducible; "
        "'random' picks one and prints it)",
    )
    group.addoption(
        "--interlace-full",
        action="store_true",
        default=False,
        help="show every row of interleaving tables: setup, the framework's own tasks and "
        "the invariants' reads, which are folded by default",
    )
    group.addoption(
        "--interlace-replay",
        default=None,
        metavar="TOKEN",
        help="run only the test whose scenario the token names, replaying its schedule",
    )
    group.addoption(
        "--interlace-html",
        default=None,
        type=Path,
        metavar="DIR",
        help="write a self-contained HTML report of the interlace tests (swimlanes of every "
        "failure) into DIR",
    )
    group.addoption(
        "--interlace-sarif",
        default=None,
        type=Path,
        metavar="FILE",
        help="write the interlace tests' findings as SARIF 2.1.0 to FILE",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(schedules=None, strategy=None, seed=None, expect_violation=False, "
        "lock_monitor=True): "
        "explore this async test under interlace's deterministic scheduler",
    )
    config.addinivalue_line(
        "markers", "postgres: needs a PostgreSQL server (interlace's provider chain)"
    )
    config.stash[_SETTINGS] = _settings(config)
    config.stash[_DATABASES] = _Databases()
    config.stash[_REPORTS] = _Reports(
        html=config.getoption("--interlace-html"), sarif=config.getoption("--interlace-sarif")
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    databases = config.stash.get(_DATABASES, None)
    if databases is not None:
        databases.close()


def _settings(config: pytest.Config) -> _Settings:
    schedules = config.getoption("--interlace-schedules")
    if schedules is not None and schedules < 1:
        raise pytest.UsageError(f"--interlace-schedules must be at least 1, got {schedules}")
    seed_text = config.getoption("--interlace-seed")
    seed: int | None = None
    random_seed = seed_text == "random"
    if random_seed:
        # the one place wall-clock randomness enters; the header prints it for the rerun
        seed = random.SystemRandom().randrange(2**31)
    elif seed_text is not None:
        if not str(seed_text).isdigit():
            raise pytest.UsageError(
                f"--interlace-seed must be a non-negative integer or 'random', got {seed_text!r}"
            )
        seed = int(seed_text)
    strategy = config.getoption("--interlace-strategy")
    if strategy is not None:
        _check_strategy(strategy)
    token = config.getoption("--interlace-replay")
    scenario = None
    if token is not None:
        from interlace._core.errors import TokenError  # noqa: PLC0415
        from interlace._core.trace import Token  # noqa: PLC0415

        try:
            scenario = Token.decode(token).scenario
        except TokenError as error:
            raise pytest.UsageError(f"--interlace-replay: {error}") from None
    return _Settings(
        schedules=schedules,
        strategy=config.getoption("--interlace-strategy"),
        seed=seed,
        session_seed=seed if seed is not None else 0,
        seed_was_random=random_seed,
        replay=token.strip() if token is not None else None,
        replay_scenario=scenario,
        full=bool(config.getoption("--interlace-full")),
    )


def _check_strategy(name: str) -> None:
    """An unknown strategy stops the session (exit 4), as other bad options do."""
    from interlace.strategies import by_name  # noqa: PLC0415

    try:
        by_name(name)
    except ValueError as error:
        raise pytest.UsageError(f"--interlace-strategy: {error}") from None


def pytest_report_header(config: pytest.Config) -> str:
    settings = config.stash[_SETTINGS]
    if settings.replay is not None:
        return f"interlace: replaying {settings.replay_scenario}"
    seed = f"seed {settings.session_seed}"
    if settings.seed_was_random:
        seed += f" (chosen at random; rerun with --interlace-seed {settings.session_seed})"
    return f"interlace: {seed}"


# ---- collection ---------------------------------------------------------------------


def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> list[SimulationItem] | None:
    """Collect a simulation whose name is a test name as one test per database."""
    simulations = sys.modules.get("interlace.simulations")
    if simulations is None or not isinstance(obj, simulations.Simulation):
        return None  # interlace.simulations not imported: obj cannot be a simulation
    if not collector.funcnamefilter(name):
        return None
    return [
        SimulationItem.from_parent(
            collector, name=_variant_name(name, database), simulation=obj, database=database
        )
        for database in obj.variants
    ]


def _variant_name(name: str, database: DatabaseKind | None) -> str:
    return name if database is None else f"{name}[{database}]"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    settings = config.stash[_SETTINGS]
    for item in items:
        if isinstance(item, pytest.Function) and item.get_closest_marker(MARKER) is not None:
            _check_marker(item)
    if settings.replay_scenario is None:
        return
    keep = [item for item in items if _scenario_name(item) == settings.replay_scenario]
    if not keep:
        raise pytest.UsageError(
            f"--interlace-replay: no collected test runs scenario {settings.replay_scenario}; "
            "give the path of the test that printed the token"
        )
    deselected = [item for item in items if item not in keep]
    config.hook.pytest_deselected(items=deselected)
    items[:] = keep


def _check_marker(item: pytest.Function) -> None:
    marker = item.get_closest_marker(MARKER)
    assert marker is not None
    unknown = sorted(set(marker.kwargs) - _MARKER_KEYWORDS)
    if marker.args or unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER} takes only the keywords "
            f"{', '.join(sorted(_MARKER_KEYWORDS))}; got "
            f"{', '.join([*map(repr, marker.args), *unknown])}"
        )


def _scenario_name(item: pytest.Item) -> str | None:
    if isinstance(item, SimulationItem):
        return item.simulation.scenario_name(item.database)
    if isinstance(item, pytest.Function) and item.get_closest_marker(MARKER) is not None:
        return marked_scenario_name(item)
    return None


def marked_scenario_name(item: pytest.Function) -> str:
    """``module:qualname[params]`` of a marked test: what its tokens carry."""
    cls = item.cls
    qualname = item.originalname if cls is None else f"{cls.__qualname__}.{item.originalname}"
    callspec = getattr(item, "callspec", None)
    # a colon would split the token's scenario field: parametrize ids may contain one
    params = f"[{callspec.id.replace(':', '_')}]" if callspec is not None else ""
    return f"{item.module.__name__ if item.module else '?'}:{qualname}{params}"


# ---- marked async tests -------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a marked test as an exploration; leave every other test to its usual runner."""
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return None
    handle = getattr(pyfuncitem.obj, "hypothesis", None)
    if handle is not None and inspect.iscoroutinefunction(inspect.unwrap(handle.inner_test)):
        # @given: hypothesis calls inner_test once per example; each example becomes an
        # exploration (as anyio runs each example on its loop); pytest then calls the
        # synchronous hypothesis wrapper as usual
        handle.inner_test = _explore_each_example(pyfuncitem, inspect.unwrap(handle.inner_test))
        return None
    function = inspect.unwrap(pyfuncitem.obj)  # pytest-asyncio's auto mode wraps it
    if not inspect.iscoroutinefunction(function):
        pytest.fail(
            f"@pytest.mark.{MARKER} needs an async test (async def): its body runs as the "
            "root task of every schedule",
            pytrace=False,
        )
    # a parameter with a default is no fixture (pytest leaves it out of funcargs): keep its default
    arguments = {
        name: pyfuncitem.funcargs[name]
        for name in inspect.signature(function).parameters
        if name in pyfuncitem.funcargs
    }
    scenario = _scenario(pyfuncitem, function, arguments)
    settings = pyfuncitem.config.stash[_SETTINGS]
    if settings.replay is not None:
        problem = _replay_marked(pyfuncitem, scenario, settings.replay)
    else:
        problem = _explore_marked(
            pyfuncitem, scenario, _config(pyfuncitem, settings, marker.kwargs)
        )
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    return True


class InterlaceExampleFailed(AssertionError):  # an AssertionError: hypothesis shrinks it
    """An example of a ``@given`` test whose exploration failed; the message is the report."""


def _explore_each_example(
    item: pytest.Function, function: Callable[..., Any]
) -> Callable[..., None]:
    marker = item.get_closest_marker(MARKER)
    assert marker is not None
    settings = item.config.stash[_SETTINGS]
    if settings.replay is not None:
        pytest.fail(
            "--interlace-replay cannot replay a @given test: its token does not hold the "
            "example; rerun the test, hypothesis replays the failing example first",
            pytrace=False,
        )
    config = _config(item, settings, marker.kwargs)

    @functools.wraps(function)
    def explore_example(*args: Any, **kwargs: Any) -> None:
        scenario = _scenario(item, function, kwargs, args)
        problem = _explore_marked(item, scenario, config, replayable=False)
        if problem is not None:
            raise InterlaceExampleFailed(problem)

    return explore_example


def _scenario(
    item: pytest.Function,
    function: Callable[..., Any],
    arguments: Mapping[str, Any],
    positional: tuple[Any, ...] = (),
) -> Scenario:
    from interlace.scenario import Scenario  # noqa: PLC0415

    async def body() -> object:
        return await function(*positional, **arguments)

    body.__qualname__ = body.__name__ = function.__name__  # "start test_x" in the table
    return Scenario(body=body, name=marked_scenario_name(item))


def _config(item: pytest.Item, settings: _Settings, marked: Mapping[str, Any]) -> Config:
    """The run's ``Config``: an option wins over the marker, the marker over defaults."""
    from interlace._core.errors import UsageError  # noqa: PLC0415
    from interlace.config import Config  # noqa: PLC0415

    def pick(option: Any, keyword: str, default: Any) -> Any:
        if option is not None:
            return option
        return marked.get(keyword, default)

    try:
        return Config(
            schedules=pick(settings.schedules, "schedules", DEFAULT_SCHEDULES),
            strategy=pick(settings.strategy, "strategy", DEFAULT_STRATEGY),
            seed=pick(settings.seed, "seed", settings.session_seed),
            lock_monitor=marked.get("lock_monitor", True),
        )
    except UsageError as error:
        pytest.fail(f"{item.nodeid}: @pytest.mark.{MARKER}: {error}", pytrace=False)


def _expectation(item: pytest.Item) -> Expectation:
    from interlace._core.errors import UsageError  # noqa: PLC0415
    from interlace.expectation import Expectation  # noqa: PLC0415

    marker = item.get_closest_marker(MARKER)
    expected = False if marker is None else marker.kwargs.get("expect_violation", False)
    try:
        return Expectation.of(expected)
    except UsageError as error:
        pytest.fail(f"{item.nodeid}: @pytest.mark.{MARKER}: {error}", pytrace=False)


def _explore_marked(
    item: pytest.Function, scenario: Scenario, config: Config, *, replayable: bool = True
) -> str | None:
    """Explore; the failure report when the test should fail, else None."""
    from interlace.explore import explore  # noqa: PLC0415

    report = explore(scenario, config)
    expectation = _expectation(item)
    where = (
        f"{report.schedules_run} of {config.schedules} schedules "
        f"({config.strategy_name}, seed {config.seed})"
    )
    if replayable:  # a @given test's examples are not reported one by one
        _remember_marked(item, scenario.name, report, expectation, where)
    if report.problem is not None:
        _fail_with_problem(report.problem)
    failure = report.failure
    _record(item, report.schedules_run, report.distinct_interleavings, failure)
    judgement = expectation.judge(failure, where)
    if judgement.ok:
        return None
    if failure is None:
        return judgement.message  # a canary that was not caught
    if expectation.canary:
        title = f"{judgement.message}\nin {where}"
        return _report(item, failure, title, replayable=replayable)
    title = f"interlace found a failing schedule in {where}"
    return _report(item, failure, title, replayable=replayable)


def _remember_marked(
    item: pytest.Item,
    scenario: str,
    report: ExploreReport,
    expectation: Expectation,
    where: str,
) -> None:
    """Keep a marked test's outcome for the session's reports, judged as the test is."""
    reports = item.config.stash[_REPORTS]
    if not reports.wanted:
        return
    from interlace.outcome import Outcome, SimulationRun, Verdict  # noqa: PLC0415

    judgement = expectation.judge(report.failure, where)
    if report.problem is not None:
        internal = report.problem.outcome is Outcome.INTERNAL_ERROR
        verdict = Verdict.INTERNAL_ERROR if internal else Verdict.USAGE_ERROR
        message = report.problem.headline()
    elif judgement.caught:
        verdict, message = Verdict.CAUGHT, judgement.message
    elif not judgement.ok:
        verdict = Verdict.VIOLATION if report.failure is not None else Verdict.MISSED
        message = judgement.message
    else:
        verdict, message = Verdict.PASSED, judgement.message
    run = SimulationRun(
        scenario,
        None,
        expectation.canary,
        verdict,
        message,
        report.failure,
        report,
        problem=report.problem,
    )
    _remember(item, run)


def _remember(item: pytest.Item, run: SimulationRun) -> None:
    reports = item.config.stash[_REPORTS]
    if reports.wanted:
        reports.runs.append(run)
        reports.nodes[run.scenario] = item.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Render ``--interlace-html`` and ``--interlace-sarif`` from the session's outcomes."""
    reports = session.config.stash.get(_REPORTS, None)
    if reports is None or not reports.wanted:
        return
    from interlace.report.context import RunInfo  # noqa: PLC0415
    from interlace.report.failure import pytest_replay_command  # noqa: PLC0415

    settings = session.config.stash[_SETTINGS]
    databases = sorted({run.database for run in reports.runs if run.database is not None})
    info = RunInfo(
        started=reports.started,
        elapsed=time.monotonic() - reports.clock,
        database=databases[0] if len(databases) == 1 else None,
        settings=f"--interlace-seed {settings.session_seed}",
        command="pytest",
        root=session.config.rootpath,
        replay=lambda run, failure: pytest_replay_command(
            reports.nodes.get(run.scenario, run.scenario), failure.token
        ),
    )
    from interlace.report.html import write_html  # noqa: PLC0415
    from interlace.report.sarif import render_sarif  # noqa: PLC0415

    try:
        if reports.html is not None:
            reports.written.append(f"wrote {write_html(reports.runs, info, reports.html)}")
        if reports.sarif is not None:
            reports.sarif.parent.mkdir(parents=True, exist_ok=True)
            reports.sarif.write_text(render_sarif(reports.runs, info), encoding="utf-8")
            reports.written.append(f"wrote {reports.sarif}")
    except OSError as error:
        reports.written.append(f"cannot write a report: {error}")


def _replay_marked(item: pytest.Function, scenario: Scenario, token: str) -> str | None:
    """Replay the token; the failure report when the test should fail, else None."""
    from interlace.explore import replay_report  # noqa: PLC0415

    report = replay_report(scenario, token, _config(item, item.config.stash[_SETTINGS], {}))
    if report.problem is not None:
        _fail_with_problem(report.problem)
    failure = report.failure
    if failure is not None:
        _record(item, 1, 1, failure)
    judgement = _expectation(item).judge(failure, "the replayed schedule")
    if judgement.ok:
        return None
    if failure is None:
        return judgement.message
    return _report(item, failure, "the replayed schedule fails")


def _fail_with_problem(problem: Problem) -> NoReturn:
    """A usage or setup error: one short message; an internal error: the bug report."""
    from interlace.outcome import Outcome  # noqa: PLC0415

    if problem.outcome is Outcome.INTERNAL_ERROR:
        pytest.fail(problem.describe(), pytrace=False)
    pytest.fail(f"interlace: {problem.message}", pytrace=False)


def _report(
    item: pytest.Item,
    failure: Failure,
    title: str,
    *,
    importable: bool = False,
    replayable: bool = True,
) -> str:
    """The failure's report with the commands that replay it (none for a ``@given`` example).

    The headline is said once: when ``title`` holds its first line, the report
    gives only its further lines.
    """
    from interlace.report.failure import (  # noqa: PLC0415
        failure_report,
        interlace_replay_command,
        pytest_replay_command,
    )

    commands = []
    if importable:
        commands.append(("replay", interlace_replay_command(failure.token)))
    if replayable:
        commands.append(("replay with pytest", pytest_replay_command(item.nodeid, failure.token)))
    else:
        commands.append(
            ("replay", "rerun the test: hypothesis tries this example first, with the same seed")
        )
    shown = failure.headline().splitlines()[0] in title
    report = failure_report(
        failure,
        commands,
        headline_shown=shown,
        full=item.config.stash[_SETTINGS].full,
        width=item.config.get_terminal_writer().fullwidth,
        full_hint="--interlace-full",
    )
    return f"{title}\n{report}" if shown else f"{title}\n\n{report}"


def _record(item: pytest.Item, schedules: int, interleavings: int, failure: Failure | None) -> None:
    item.user_properties.append(("interlace_schedules", schedules))
    item.user_properties.append(("interlace_interleavings", interleavings))
    if failure is not None:
        item.user_properties.append(("interlace_token", failure.token))


# ---- simulations --------------------------------------------------------------------


class SimulationItem(pytest.Item):
    """One simulation on one database, judged like ``interlace run`` judges it."""

    def __init__(
        self,
        *,
        simulation: Simulation,
        database: DatabaseKind | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.simulation = simulation
        self.database = database
        if database == "postgres":
            self.add_marker("postgres")

    def runtest(self) -> None:
        settings = self.config.stash[_SETTINGS]
        supply = self._supply()
        if settings.replay is not None:
            self._replay(supply, settings.replay)
            return
        from interlace.runner import run_simulation  # noqa: PLC0415

        run = run_simulation(self.simulation, supply, _config(self, settings, {}))
        _remember(self, run)
        if run.problem is not None:
            _fail_with_problem(run.problem)
        if run.report is not None:
            _record(self, run.report.schedules_run, run.report.distinct_interleavings, None)
        if run.failure is not None:
            self.user_properties.append(("interlace_token", run.failure.token))
        if run.ok:
            return
        title = f"{run.scenario}: {run.verdict.value}: {run.message}"
        if run.failure is None:
            pytest.fail(title, pytrace=False)
        pytest.fail(_report(self, run.failure, title, importable=True), pytrace=False)

    def _replay(self, supply: DatabaseSupply | None, token: str) -> None:
        from interlace.explore import replay_report  # noqa: PLC0415

        scenario = self.simulation.scenario(supply)
        report = replay_report(scenario, token, _config(self, self.config.stash[_SETTINGS], {}))
        if report.problem is not None:
            _fail_with_problem(report.problem)
        failure = report.failure
        if failure is not None:
            _record(self, 1, 1, failure)
        judgement = self.simulation.expectation.judge(failure, "the replayed schedule")
        if judgement.ok:
            return
        if failure is None:
            pytest.fail(judgement.message, pytrace=False)
        report_text = _report(self, failure, "the replayed schedule fails", importable=True)
        pytest.fail(report_text, pytrace=False)

    def _supply(self) -> DatabaseSupply | None:
        if self.database is None:
            return None
        databases = self.config.stash[_DATABASES]
        return databases.supply(self.database)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


class _Databases:
    """The session's databases: one PostgreSQL server, started on first use, for every user.

    Simulation tests and the ``interlace_postgres`` fixtures share it, so a
    session starts at most one server (and stops it at the end).
    """

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._supplies: dict[str, DatabaseSupply] = {}
        self._server: PostgresServer | None = None
        self._unavailable: str | None = None

    def postgres_server(self) -> PostgresServer:
        """The server from the provider chain; skips (or fails) the test when there is none."""
        if self._server is not None:
            return self._server
        if self._unavailable is not None:
            _skip_or_fail(self._unavailable)
        from interlace.db.provider import PostgresUnavailable, start_server  # noqa: PLC0415

        try:
            self._server = self._stack.enter_context(start_server())
        except (PostgresUnavailable, ValueError) as error:
            # ValueError: INTERLACE_POSTGRES names no known source
            self._unavailable = str(error)
            _skip_or_fail(self._unavailable)
        return self._server

    def supply(self, kind: DatabaseKind) -> DatabaseSupply:
        if kind not in self._supplies:
            from interlace.db.supply import PostgresSupply, SqliteSupply  # noqa: PLC0415

            opened: DatabaseSupply = (
                SqliteSupply() if kind == "sqlite" else PostgresSupply(self.postgres_server())
            )
            self._supplies[kind] = opened
        return self._supplies[kind]

    def outcome(self) -> str | None:
        """What PostgreSQL the session used, if any test asked for one."""
        if self._server is not None:
            return f"used {self._server.source}"
        if self._unavailable is not None:
            return "not available (the reason is on the skipped or failed tests)"
        return None

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def interlace_postgres(request: pytest.FixtureRequest) -> PostgresServer:
    """The session's PostgreSQL server, from interlace's provider chain.

    ``INTERLACE_POSTGRES_URL``, else the embedded server, else testcontainers
    (``interlace.db.provider``). Without any, the test is skipped with the
    reason, or fails with it when ``INTERLACE_REQUIRE_POSTGRES=1``. Simulation
    tests on ``postgres`` use the same server.
    """
    return request.config.stash[_DATABASES].postgres_server()


@pytest.fixture(scope="session")
def interlace_postgres_database(interlace_postgres: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh database on that server for the session, configured for simulation; dropped after.

    ``.url`` is for ``create_async_engine`` (``postgresql+asyncpg://``), ``.dsn`` for
    ``asyncpg.connect`` (``postgresql://``).
    """
    from interlace.db.provider import (  # noqa: PLC0415
        PostgresUnavailable,
        create_database_sync,
        drop_database_sync,
    )

    try:
        database = create_database_sync(interlace_postgres)
    except PostgresUnavailable as error:
        _skip_or_fail(str(error))
    yield database
    drop_database_sync(database)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    databases = config.stash.get(_DATABASES, None)
    outcome = databases.outcome() if databases is not None else None
    if outcome is not None:
        terminalreporter.write_line(f"interlace postgres: {outcome}")
    reports = config.stash.get(_REPORTS, None)
    for line in reports.written if reports is not None else ():
        terminalreporter.write_line(f"interlace: {line}")


def _skip_or_fail(reason: str) -> NoReturn:
    from interlace.db.provider import REQUIRE_ENV, postgres_required  # noqa: PLC0415

    if postgres_required():
        pytest.fail(f"{REQUIRE_ENV} is set and {reason}", pytrace=False)
    pytest.skip(reason)
