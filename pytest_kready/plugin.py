"""pytest-kready's pytest11 plugin: options, markers, report header, configure/unconfigure. It only wires.

Without ``--kready`` (or ``kready = true`` in the ini file) it does nothing: no fixtures, no hooks acting, and
nothing imported that talks to a cluster. With it and no test paths given, the shipped suites are collected.
"""

from __future__ import annotations

import importlib

import pytest

from . import early, hooks
from .resources import suites_dir
from .settings import MODES, OPTIONS, OPTIONS_BY_NAME, Settings

MARKERS = (
    "kready_mode(mode): the least run mode a check needs: readonly, standard (default) or disruptive",
    "kready_needs(capability, ...): provider capabilities a check needs (ephemeral, control-plane-exec, etcd, "
    "etcd-restore, audit-log, upgrade-in-place); not-applicable with the provider's reason otherwise",
    "kready_needs_permission(verb, resource, group='', namespace=None, subresource=None): a permission the check "
    "needs (SelfSubjectAccessReview); not-applicable naming it otherwise",
    "kready_early(key, start): start(cluster) begins in the background once the cluster is ready (once per key); "
    "the test takes its result with kready_cluster.early.take(key) (pytest_kready.early)",
    "kready_check(id): the check id findings and reports carry",
    "kready_upgrade: a check of the upgrade suite; collected only with --kready-upgrade-to (deselected otherwise)",
    "kready_rehearsal: the in-place upgrade of --kready-upgrade-rehearsal, run between the two phases of the checks "
    "(deselected otherwise)",
)
CAPABILITY_NAMES = ("ephemeral", "control-plane-exec", "etcd", "etcd-restore", "audit-log", "upgrade-in-place")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kready", "pytest-kready: prove a Kubernetes cluster is production-ready")
    for opt in OPTIONS:
        if opt.flag:
            group.addoption(opt.cli, action="store_true", default=None, dest=opt.dest, help=opt.help)
        else:
            group.addoption(opt.cli, action="append" if opt.multiple else "store", default=None, dest=opt.dest,
                            metavar=opt.metavar, help=opt.help)
        parser.addini(opt.ini, help=f"{opt.help} (same as {opt.cli})", type="linelist" if opt.multiple else "string")


def _enabled(config: pytest.Config) -> bool:
    if config.getoption(OPTIONS_BY_NAME[""].dest, default=None):
        return True
    return str(config.getini(OPTIONS_BY_NAME[""].ini)).strip().lower() in ("1", "true", "yes", "on")


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    if not _enabled(config):
        return
    # import_module, not ``from . import``: always the module in sys.modules, so stash keys agree between modules
    fixtures = importlib.import_module(".fixtures", __package__)
    from .errors import ConfigError
    from .reports.reporter import FindingsReporter
    from .providers import resolve_named_cluster
    from .session import SESSION_KEY, KreadySession

    workerinput = getattr(config, "workerinput", None) or {}
    settings = Settings.from_config(config, run_id=workerinput.get("kready_run_id"))
    try:
        settings = resolve_named_cluster(settings)  # an existing cluster's kubeconfig, read before anything runs
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    from .providers.pytest_kind import fill_binaries

    fill_binaries(config, settings)  # pytest-kind would download kind and kubectl: give it this machine's
    ks = KreadySession(config, settings)
    config.stash[SESSION_KEY] = ks
    ks.guard.install()
    config.pluginmanager.register(fixtures, "kready-fixtures")
    config.pluginmanager.register(FindingsReporter(config, settings, ks.meta), "kready-findings")
    if settings.timings_path is not None:  # --kready-timings: where the run's time went (pytest_kready/timings.py)
        from .timings import TimingsPlugin

        config.pluginmanager.register(TimingsPlugin(settings.timings_path, ks.meta), "kready-timings")
    from .reports import html as html_report  # with --html: Environment rows, scorecard, finding blocks, grids
    html_report.register(config, ks.meta)
    if settings.upgrade_rehearsal is not None:  # every check before and after the in-place upgrade
        config.pluginmanager.register(importlib.import_module(".rehearsal_phases", __package__), "kready-rehearsal")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(suites_dir())]  # no test paths given: run the shipped suites


def pytest_unconfigure(config: pytest.Config) -> None:
    from .session import SESSION_KEY, session_of

    ks = session_of(config) if _stash_has(config) else None
    if ks is not None:
        ks.guard.uninstall()
        del config.stash[SESSION_KEY]


def _stash_has(config: pytest.Config) -> bool:
    from .session import SESSION_KEY

    return SESSION_KEY in config.stash


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: every worker uses the controller's run id (one set of labels for the whole run)."""
    from .session import session_of

    ks = session_of(node.config) if _stash_has(node.config) else None
    if ks is not None:
        node.workerinput["kready_run_id"] = ks.settings.run_id


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _stash_has(config):
        return None
    from .session import session_of

    settings = session_of(config).settings
    lines = [f"kready: {settings.describe()}"]
    if config.args == [str(suites_dir())]:
        lines.append(f"kready: shipped suites from {suites_dir()}")
    return lines


@pytest.hookimpl(tryfirst=True)  # before the rehearsal's phase order, which keeps this order within each phase
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _stash_has(config):
        return
    _deselect_upgrade(config, items)
    items[:] = early.run_order(items)
    for item in items:
        for marker in item.iter_markers("kready_mode"):
            if len(marker.args) != 1 or marker.args[0] not in MODES:
                raise pytest.UsageError(f"{item.nodeid}: kready_mode takes one of {', '.join(MODES)}")
        for marker in item.iter_markers("kready_needs"):
            unknown = [a for a in marker.args if a not in CAPABILITY_NAMES]
            if unknown or not marker.args:
                raise pytest.UsageError(f"{item.nodeid}: kready_needs takes capabilities among "
                                        f"{', '.join(CAPABILITY_NAMES)}")


def _deselect_upgrade(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --kready-upgrade-to the upgrade suite is not run, without --kready-upgrade-rehearsal the rehearsal:
    their items are deselected."""
    from .session import session_of

    settings = session_of(config).settings
    unwanted = [m for m, on in (("kready_upgrade", settings.upgrade_to is not None),
                                ("kready_rehearsal", settings.upgrade_rehearsal is not None)) if not on]
    dropped = [item for item in items if any(item.get_closest_marker(m) is not None for m in unwanted)]
    if dropped:
        items[:] = [item for item in items if item not in dropped]
        config.hook.pytest_deselected(items=dropped)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if not _stash_has(config):
        return
    from .session import session_of

    for message in session_of(config).messages:
        terminalreporter.write_line(f"kready: {message}")
