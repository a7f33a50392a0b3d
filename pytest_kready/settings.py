"""Settings: every ``--kready-*`` option resolved CLI → ini (``kready_*``) → environment (where noted) → default,
validated once at configure time. Bad values raise ``pytest.UsageError`` with one line.

Nothing here talks to a cluster or reads a kubeconfig: the provider is only *named* here (``None`` = choose at
first use); an existing cluster's kubeconfig file is found by ``providers.resolve_named_cluster``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest

from . import labels, rehearsal
from .local.bins import bin_dir as default_local_bin_dir

READONLY, STANDARD, DISRUPTIVE = "readonly", "standard", "disruptive"
MODES = (READONLY, STANDARD, DISRUPTIVE)
MODE_RANK = {m: i for i, m in enumerate(MODES)}
PROVIDERS = ("kind", "kubeconfig", "local")
PROFILES = ("baseline", "hardened")
KEEP = ("none", "failed", "all")
FAIL_ON = ("fail", "inconclusive")
MIN_SEVERITIES = ("low", "medium", "high", "critical")
DEFAULT_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
DEFAULT_SWEEP_GRACE = 600.0
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Opt:
    """One option: ``--kready-<name>`` on the command line, ``kready_<name>`` in the ini file."""

    name: str
    help: str
    metavar: str | None = None
    env: str | None = None
    flag: bool = False
    multiple: bool = False

    @property
    def cli(self) -> str:
        return "--kready" if self.name == "" else f"--kready-{self.name}"

    @property
    def dest(self) -> str:
        return "kready" if self.name == "" else "kready_" + self.name.replace("-", "_")

    @property
    def ini(self) -> str:
        return self.dest


OPTIONS: tuple[Opt, ...] = (
    Opt("", "run the pytest-kready checks (without it the plugin does nothing)", flag=True),
    Opt("provider", "cluster provider: kind | kubeconfig | local (default: kind when kind and docker/podman "
        "are present, else local when its binaries are found)", "NAME"),
    Opt("kubeconfig", "kubeconfig of an EXISTING cluster to check (implies --kready-provider=kubeconfig, "
        "default mode readonly)", "PATH"),
    Opt("context", "context in the kubeconfig (implies --kready-provider=kubeconfig)", "NAME"),
    Opt("profile", "reference profile of an ephemeral cluster: baseline | hardened (default baseline)", "NAME"),
    Opt("cluster-config", "your own kind cluster config (kind provider) instead of the shipped profile's",
        "PATH"),
    Opt("apply", "manifest file or directory applied before the suites to a kind/local cluster this run made or "
        "that you started (repeatable)", "PATH",
        multiple=True),
    Opt("namespaces", "comma list of namespaces to check (default: every non-system namespace plus one fresh "
        "namespace showing the cluster defaults)", "NS,NS"),
    Opt("mode", "readonly (creates nothing) | standard (throw-away namespaces) | disruptive (restarts, "
        "restores); default standard, readonly on a kubeconfig cluster", "MODE"),
    Opt("keep", "what to keep after the run for debugging: none | failed | all (default none)", "WHAT"),
    Opt("json", "write every finding to this JSON file (schema pytest-kready/findings/v1, docs/reports.md)", "PATH"),
    Opt("sarif", "write the failing and inconclusive findings as SARIF 2.1.0 to this file (code scanning)", "PATH"),
    Opt("waivers", "YAML file of waivers: accepted exceptions with a check id, scope, reason, owner and expiry "
        "(docs/reports.md)", "FILE"),
    Opt("compare", "an earlier run's --kready-json file: show what changed since (new failures, fixed, ...)",
        "PREVIOUS.json"),
    Opt("fail-on", "what fails the exit status: fail | inconclusive (default inconclusive: fail and inconclusive "
        "findings both do)", "WHAT"),
    Opt("min-severity", "only findings of this severity or above fail the exit status: low | medium | high | "
        "critical (default: every severity)", "LEVEL"),
    Opt("timings", "write where the run's time went to this JSON file: pytest's durations per test, the plugin's "
        "phases (cluster start, preflight, sweep, apply, cleanup), fixtures' setup and teardown, waits "
        "(pytest_kready/timings.py; read by tools/bench_run.py)", "PATH"),
    Opt("image", f"probe image (default {DEFAULT_IMAGE})", "IMAGE"),
    Opt("local-bin-dir", "directory of Kubernetes binaries for the local provider, laid out like "
        "kubernetes/server/bin (env KREADY_LOCAL_BIN_DIR)", "DIR", env="KREADY_LOCAL_BIN_DIR"),
    Opt("sweep-grace", "objects left by killed runs are swept once older than this (seconds, or 10m, 1h; "
        "default 10m)", "DURATION"),
    Opt("rollout-target", "a Deployment of yours to roll out under load, as NAMESPACE/NAME (check "
        "rollout.zero-downtime-target; disruptive mode only: it restarts the Deployment)", "NAMESPACE/NAME"),
    Opt("rollout-path", "URL path the load requests during --kready-rollout-target's rollout (default /)", "PATH"),
    Opt("storage-classes", "comma list of StorageClasses storage.pvc-reclaim checks besides the default one",
        "SC,SC"),
    Opt("allowed-registries", "comma list of image registries (or registry/path prefixes) pods may use; check "
        "images.registry proves an image from elsewhere is refused (not-applicable without it)", "REG,REG"),
    Opt("allow-etcd-restore", "let etcd.snapshot-restore roll etcd back on a kind/local cluster this run did not "
        "make but attached to (e.g. started with kready-local up); clusters the run makes need no permission",
        flag=True),
    Opt("upgrade-to", "the Kubernetes minor version you are about to upgrade to, e.g. 1.37: runs the upgrade suite "
        "(upgrade.*) against it; without it the upgrade suite is not run", "MINOR"),
    Opt("upgrade-rehearsal", "local provider, disruptive: start the cluster at OLD, run the suites, upgrade it in "
        "place to NEW under load (upgrade.rehearsal: requests lost, API unavailability per step), run the suites "
        "again and report the verdicts that changed; both versions' binaries built with tools/build-local-binaries.sh",
        "OLD:NEW"),
)
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(message)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Resolved options. ``sources`` tells, per option name, where its value came from (cli, ini, env, default)."""

    enabled: bool = False
    provider: str | None = None  # None: chosen at first use (providers.select_provider)
    kubeconfig: Path | None = None
    context: str | None = None
    profile: str = "baseline"
    cluster_config: Path | None = None
    apply: tuple[Path, ...] = ()
    namespaces: tuple[str, ...] | None = None  # None: every non-system namespace + a fresh one
    mode: str = STANDARD
    keep: str = "none"
    json_path: Path | None = None
    sarif_path: Path | None = None
    timings_path: Path | None = None
    waivers_path: Path | None = None
    compare_path: Path | None = None
    fail_on: str = "inconclusive"  # the exit status fails on fail and inconclusive findings ("fail": fail only)
    min_severity: str = "info"  # findings below it do not fail the exit status ("info": every severity counts)
    image: str = DEFAULT_IMAGE
    local_bin_dir: Path = dataclasses.field(default_factory=default_local_bin_dir)
    sweep_grace: float = DEFAULT_SWEEP_GRACE
    rollout_target: tuple[str, str] | None = None  # (namespace, name) of a user's Deployment
    rollout_path: str = "/"
    storage_classes: tuple[str, ...] = ()
    allowed_registries: tuple[str, ...] | None = None  # None: no allow-list given
    allow_etcd_restore: bool = False  # the etcd restore drill on an attached (not ephemeral) cluster
    upgrade_to: str | None = None  # "1.37": the minor version the upgrade suite judges against; None: not run
    upgrade_rehearsal: tuple[str, str] | None = None  # ("v1.36.2", "v1.37.2"): the rehearsal's versions
    run_id: str = dataclasses.field(default_factory=labels.new_run_id)
    sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def existing_cluster(self) -> bool:
        """True when the run checks a cluster the plugin did not create."""
        return self.provider == "kubeconfig"

    def allows(self, needed_mode: str) -> bool:
        return MODE_RANK[self.mode] >= MODE_RANK[needed_mode]

    def describe(self) -> str:
        provider = self.provider or "auto"
        return (f"provider={provider} mode={self.mode} profile={self.profile} keep={self.keep} "
                f"run-id={self.run_id}")

    # ----------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: pytest.Config, *, run_id: str | None = None) -> Settings:
        raw = _RawOptions(config)
        sources: dict[str, str] = {}

        def get(name: str) -> Any:
            value, source = raw.get(OPTIONS_BY_NAME[name])
            sources[name] = source
            return value

        enabled = _parse_bool("kready", get(""))
        provider = _choice("provider", get("provider"), PROVIDERS)
        kubeconfig = raw.path(get("kubeconfig"), sources.get("kubeconfig"))
        context = get("context") or None
        profile = _choice("profile", get("profile"), PROFILES) or "baseline"
        cluster_config = raw.path(get("cluster-config"), sources.get("cluster-config"))
        apply_paths = tuple(raw.path(p, sources.get("apply")) for p in (get("apply") or ()))
        namespaces = _namespaces(get("namespaces"))
        mode = _choice("mode", get("mode"), MODES)
        keep = _choice("keep", get("keep"), KEEP) or "none"
        json_path = raw.path(get("json"), sources.get("json"))
        sarif_path = raw.path(get("sarif"), sources.get("sarif"))
        timings_path = raw.path(get("timings"), sources.get("timings"))
        waivers_path = raw.path(get("waivers"), sources.get("waivers"))
        compare_path = raw.path(get("compare"), sources.get("compare"))
        fail_on = _choice("fail-on", get("fail-on"), FAIL_ON) or "inconclusive"
        min_severity = _choice("min-severity", get("min-severity"), MIN_SEVERITIES) or "info"
        for flag, p in (("--kready-waivers", waivers_path), ("--kready-compare", compare_path)):
            if p is not None and not p.is_file():
                raise _usage(f"{flag}={p}: no such file")
        outputs = (("--kready-json", json_path), ("--kready-sarif", sarif_path), ("--kready-timings", timings_path))
        for flag, p in outputs:
            if p is not None and p.is_dir():
                raise _usage(f"{flag}={p} is a directory; give a file name")
        for i, (flag, p) in enumerate(outputs):
            for other, q in outputs[i + 1:]:
                if p is not None and q is not None and p == q:
                    raise _usage(f"{flag} and {other} name the same file {p}; give two files")
        image = get("image") or DEFAULT_IMAGE
        local_bin_dir = raw.path(get("local-bin-dir"), sources.get("local-bin-dir")) or default_local_bin_dir()
        sweep_grace = parse_duration(get("sweep-grace"), DEFAULT_SWEEP_GRACE)
        rollout_target = _rollout_target(get("rollout-target"))
        rollout_path = _rollout_path(get("rollout-path"))
        storage_classes = _storage_classes(get("storage-classes"))
        allowed_registries = _allowed_registries(get("allowed-registries"))
        allow_etcd_restore = _parse_bool("kready_allow_etcd_restore", get("allow-etcd-restore"))
        upgrade_to = _upgrade_to(get("upgrade-to"))
        upgrade_rehearsal = _upgrade_rehearsal(get("upgrade-rehearsal"))
        if upgrade_rehearsal is not None:
            old, new = upgrade_rehearsal
            if provider not in (None, "local"):
                raise _usage(f"--kready-upgrade-rehearsal upgrades a local cluster in place; it cannot be used with "
                             f"--kready-provider={provider} (use --kready-provider=local)")
            if upgrade_to is not None and upgrade_to != rehearsal.minor_of(new):
                raise _usage(f"--kready-upgrade-to={upgrade_to} and --kready-upgrade-rehearsal=...:{new.lstrip('v')} "
                             "name different targets; drop --kready-upgrade-to")
            if sources.get("local-bin-dir") not in (None, "default"):
                raise _usage("--kready-upgrade-rehearsal takes both versions' binaries from the cache "
                             "(tools/build-local-binaries.sh); drop --kready-local-bin-dir")
            for version in (old, new):
                if not (default_local_bin_dir(version) / "kube-apiserver").is_file():
                    raise _usage(f"--kready-upgrade-rehearsal: no binaries for Kubernetes {version} in "
                                 f"{default_local_bin_dir(version)}; build them with "
                                 f"K8S_VERSION={version} bash tools/build-local-binaries.sh")
            provider, upgrade_to = "local", rehearsal.minor_of(new)
            local_bin_dir = default_local_bin_dir(old)
            if mode not in (None, DISRUPTIVE):
                raise _usage(f"--kready-upgrade-rehearsal is disruptive (it restarts the control plane and the "
                             f"node); drop --kready-mode={mode}")
            mode = DISRUPTIVE

        # an existing cluster only when named
        if kubeconfig is not None or context is not None:
            if provider not in (None, "kubeconfig"):
                flag = "--kready-kubeconfig" if kubeconfig is not None else "--kready-context"
                raise _usage(f"{flag} names an existing cluster; it cannot be combined with "
                             f"--kready-provider={provider}")
            provider = "kubeconfig"
        if cluster_config is not None:
            if provider not in (None, "kind"):
                raise _usage(f"--kready-cluster-config is a kind cluster config; it cannot be used with "
                             f"--kready-provider={provider}")
            if sources.get("profile") not in (None, "default") and profile != "baseline":
                raise _usage("--kready-cluster-config replaces the profile's kind config; drop "
                             f"--kready-profile={profile} or merge pytest_kready/kind-configs/{profile}.yaml "
                             "into your config")
            if not cluster_config.is_file():
                raise _usage(f"--kready-cluster-config={cluster_config}: no such file")
            provider = "kind"
        for p in apply_paths:
            if not (p.is_file() or p.is_dir()):  # a file, or a directory of YAML files (applied recursively)
                raise _usage(f"--kready-apply={p}: no such file or directory")

        if provider == "kubeconfig":
            if apply_paths:
                raise _usage("--kready-apply changes a cluster; it applies only to clusters the plugin creates "
                             "(kind, local), not to an existing kubeconfig cluster")
            if mode is None:
                mode = READONLY
                sources["mode"] = "default"
            elif mode == DISRUPTIVE and sources.get("mode") != "cli":
                raise _usage("disruptive mode on an existing cluster must be asked for on the command line "
                             "(--kready-mode=disruptive); the ini setting is not enough")
        mode = mode or STANDARD
        return cls(
            enabled=enabled, provider=provider, kubeconfig=kubeconfig, context=context, profile=profile,
            cluster_config=cluster_config, apply=apply_paths, namespaces=namespaces, mode=mode, keep=keep,
            json_path=json_path, sarif_path=sarif_path, timings_path=timings_path, waivers_path=waivers_path,
            compare_path=compare_path,
            fail_on=fail_on, min_severity=min_severity, image=image, local_bin_dir=local_bin_dir, sweep_grace=sweep_grace,
            run_id=run_id or labels.new_run_id(), sources=sources,
            rollout_target=rollout_target, rollout_path=rollout_path, storage_classes=storage_classes,
            allowed_registries=allowed_registries, allow_etcd_restore=allow_etcd_restore, upgrade_to=upgrade_to,
            upgrade_rehearsal=upgrade_rehearsal,
        )


class _RawOptions:
    """Reads one option's raw value with its source: cli, ini, env or default."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.cwd = Path(config.invocation_params.dir)
        self.ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)

    def get(self, opt: Opt) -> tuple[Any, str]:
        cli = self.config.getoption(opt.dest, default=None)
        if cli not in (None, [], ""):
            return cli, "cli"
        ini = self.config.getini(opt.ini)
        if ini not in (None, [], ""):
            if opt.multiple and isinstance(ini, str):
                ini = ini.split()
            return ini, "ini"
        if opt.env and os.environ.get(opt.env):
            return os.environ[opt.env], "env"
        return None, "default"

    def path(self, value: Any, source: str | None) -> Path | None:
        if value in (None, ""):
            return None
        p = Path(os.path.expanduser(str(value)))
        if not p.is_absolute():
            p = (self.ini_dir if source == "ini" else self.cwd) / p
        return p


def _parse_bool(name: str, value: Any) -> bool:
    if value in (None, ""):
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise _usage(f"{name} = {value!r} is not a boolean; use true or false")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    if text not in choices:
        raise _usage(f"--kready-{name}={value}: unknown value; choose one of {', '.join(choices)}")
    return text


def _namespaces(value: Any) -> tuple[str, ...] | None:
    if value in (None, ""):
        return None
    names = tuple(n.strip() for n in str(value).split(",") if n.strip())
    if not names:
        raise _usage("--kready-namespaces is empty; give a comma list of namespaces, e.g. team-a,team-b")
    for n in names:
        if not _DNS_LABEL.match(n):
            raise _usage(f"--kready-namespaces: {n!r} is not a valid namespace name")
    return names


def parse_duration(value: Any, default: float) -> float:
    """``600``, ``600s``, ``10m``, ``1h`` → seconds."""
    if value in (None, ""):
        return default
    text = str(value).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text)
    if not m:
        raise _usage(f"--kready-sweep-grace={value}: not a duration; use seconds or a number with s, m or h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _rollout_target(value: Any) -> tuple[str, str] | None:
    if value in (None, ""):
        return None
    namespace, _, name = str(value).strip().partition("/")
    if not (_DNS_LABEL.match(namespace) and re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name)):
        raise _usage(f"--kready-rollout-target={value}: give the Deployment as NAMESPACE/NAME, e.g. shop/web")
    return namespace, name


def _rollout_path(value: Any) -> str:
    if value in (None, ""):
        return "/"
    text = str(value).strip()
    if not text.startswith("/") or re.search(r"[\s'\"\\]|[\x00-\x1f\x7f]", text):
        raise _usage(f"--kready-rollout-path={value!r}: give a URL path starting with / (no spaces or quotes), "
                     "e.g. /healthz")
    return text


def _storage_classes(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in str(value).split(",") if n.strip()))
    for n in names:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", n):
            raise _usage(f"--kready-storage-classes: {n!r} is not a valid StorageClass name")
    return names


def _allowed_registries(value: Any) -> tuple[str, ...] | None:
    """``registry.k8s.io, ghcr.io/acme/`` → ``("registry.k8s.io", "ghcr.io/acme")``; ini lines work too."""
    if value in (None, "", []):
        return None
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(dict.fromkeys(p.strip().rstrip("/") for item in parts for p in str(item).split(",") if p.strip()))
    if not names:
        raise _usage("--kready-allowed-registries is empty; give a comma list, e.g. registry.k8s.io,ghcr.io/acme")
    for n in names:
        if not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?(:\d+)?(/[a-z0-9]([-a-z0-9._/]*[a-z0-9])?)?", n):
            raise _usage(f"--kready-allowed-registries: {n!r} is not a registry host or registry/path prefix")
    return names


def _upgrade_to(value: Any) -> str | None:
    """``1.37`` or ``v1.37`` → ``"1.37"``: a Kubernetes minor version (not a patch version)."""
    if value in (None, ""):
        return None
    m = re.fullmatch(r"v?(1)\.(\d{1,3})", str(value).strip())
    if not m:
        raise _usage(f"--kready-upgrade-to={value}: give the Kubernetes minor version you upgrade to, e.g. 1.37 "
                     "(not a patch version)")
    return f"{m.group(1)}.{int(m.group(2))}"


def _upgrade_rehearsal(value: Any) -> tuple[str, str] | None:
    """``1.36.2:1.37.2`` → ``("v1.36.2", "v1.37.2")``."""
    if value in (None, ""):
        return None
    try:
        return rehearsal.parse_versions(str(value))
    except ValueError as e:
        raise _usage(f"--kready-upgrade-rehearsal={value}: {e}") from None
