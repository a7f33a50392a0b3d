"""RBAC, acted out with real credentials: the namespace's default ServiceAccount with a token from the
TokenRequest API (not impersonation, not an access review) tries to read Secrets and to exec into pods; a pod
under it is dry-run to see whether a token would be mounted; requests with no credentials at all try to list;
and the bindings are read for cluster-admin and wildcard roles handed to people and workloads.

Every check has a positive control: the token authenticates as the ServiceAccount (SelfSubjectReview), an
explicit automount does mount a token, the run's own identity can list what anonymous may not, the stock
cluster-admin binding and role are visible. Details: docs/checks-rbac-admission.md.
"""

from __future__ import annotations


import pytest

from pytest_kready import errors
from pytest_kready import attempts, client
from pytest_kready.checks import rbac
from pytest_kready.checks import references as ref
from pytest_kready.findings import Verdict
from pytest_kready.resources import profile_file

pytestmark = pytest.mark.kready_mode("readonly")

_SA_YAML = profile_file("hardened", "namespace", "serviceaccount.yaml")
RB = f"/apis/{rbac.RBAC_GROUP}/v1"


@pytest.fixture(scope="module")
def rbac_targets(kready_cluster) -> list[str]:
    targets = kready_cluster.target_namespaces()
    fresh = kready_cluster.defaults_namespace() if kready_cluster.settings.namespaces is None else None
    if fresh:
        kready_cluster.wait_default_serviceaccount(fresh)
    return targets


@pytest.fixture(scope="module")
def bindings(kready_cluster) -> dict[str, list[dict] | None]:
    """ClusterRoleBindings and RoleBindings (None where the run may not list them)."""
    api = kready_cluster.api_client()
    return {"cluster": rbac.list_all(api, f"{RB}/clusterrolebindings"),
            "namespaced": rbac.list_all(api, f"{RB}/rolebindings")}


def _targets(targets, kready_finding) -> list[str]:
    if not targets:
        kready_finding.not_applicable("no target namespaces (readonly mode without --kready-namespaces and no "
                                      "non-system namespace in the cluster)")
    return targets


def _sa_login(cluster, ns, as_sa, kready_finding, **fields):
    """A client holding a real token of ``ns``'s default ServiceAccount and the positive control, or None after
    recording why not (not-applicable / inconclusive) for ``ns``."""
    expected = f"system:serviceaccount:{ns}:default"
    if not cluster.can("create", "serviceaccounts", namespace=ns, subresource="token"):
        kready_finding(Verdict.NOT_APPLICABLE, f"no permission to create serviceaccounts/token in namespace {ns} "
                       "(TokenRequest for its default ServiceAccount)", target_namespace=ns, **fields)
        return None, None
    try:
        cluster.api_client().raw("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
    except errors.APINotFound:
        kready_finding(Verdict.NOT_APPLICABLE, f"namespace {ns} has no default ServiceAccount (or is gone)",
                       target_namespace=ns, **fields)
        return None, None
    except errors.APIForbidden:
        pass  # may not read it; the token request says more
    try:
        sa = as_sa(ns)
    except errors.APIError as e:
        kready_finding(Verdict.INCONCLUSIVE, f"TokenRequest for {expected} failed: {e}", target_namespace=ns,
                       **fields)
        return None, None
    status, user = rbac.whoami(sa)
    control = {"selfsubjectreview": {"status": status, "username": user}, "expected": expected}
    if user != expected:
        kready_finding(Verdict.INCONCLUSIVE, f"positive control failed: the token does not authenticate as {expected} "
                       f"(SelfSubjectReview: HTTP {status}, user {user})", target_namespace=ns,
                       evidence={"positive_control": control}, **fields)
        return None, None
    return sa, control


def _granted_by(bindings, ns) -> list[str] | str:
    if bindings["cluster"] is None or bindings["namespaced"] is None:
        return "bindings not readable by this run"
    return rbac.bindings_granting(ns, "default", bindings["cluster"], bindings["namespaced"])


def _sa_remediation(ns: str, what: str) -> str:
    return (f"Remove what grants the default ServiceAccount of {ns} {what} (evidence.granted_by lists the bindings; "
            f"kubectl get rolebindings,clusterrolebindings -A -o wide | grep -e '{ns}/default' -e system:serviceaccounts"
            " -e system:authenticated), and give each workload a ServiceAccount of its own bound to a Role with only "
            "the verbs and resource names it needs, e.g.\n"
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: app-config-reader\n"
            f"  namespace: {ns}\nrules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n"
            "    resourceNames: [app-config]\n    verbs: [get]")


@pytest.mark.kready_check("rbac.default-sa-secrets")
def test_default_serviceaccount_cannot_read_secrets(kready_cluster, rbac_targets, bindings, kready_as_serviceaccount,
                                                    kready_finding):
    refs = (ref.CIS_SECRETS, ref.CIS_DEFAULT_SA, ref.NSA_RBAC)
    for ns in _targets(rbac_targets, kready_finding):
        common = dict(severity="high", references=refs,
                      repro=f"kubectl get secrets -n {ns} --as=system:serviceaccount:{ns}:default")
        sa, control = _sa_login(kready_cluster, ns, kready_as_serviceaccount, kready_finding, **common)
        if sa is None:
            continue
        tries = rbac.secret_tries(sa, ns)
        evidence = {"identity": control["expected"], "positive_control": control, "attempts": [t.evidence() for t in tries]}
        _record_tries(
            kready_finding, ns, tries, bindings, evidence, common, what="access to Secrets",
            fail=lambda allowed: (f"the default ServiceAccount may {', '.join(allowed)} Secrets in {ns} (tried with its "
                                  "own token): every pod without a ServiceAccount of its own can read them"),
            passed=f"get, list and watch of Secrets in {ns} refused (403) for its default ServiceAccount")


@pytest.mark.kready_check("rbac.default-sa-exec")
def test_default_serviceaccount_cannot_exec(kready_cluster, rbac_targets, bindings, kready_as_serviceaccount,
                                            kready_finding):
    refs = (ref.CIS_DEFAULT_SA, ref.CIS_CREATE_PODS, ref.NSA_RBAC)
    for ns in _targets(rbac_targets, kready_finding):
        common = dict(severity="high", references=refs,
                      repro=f"kubectl exec -n {ns} kready-absent --as=system:serviceaccount:{ns}:default -- true "
                            "# Forbidden = refused, NotFound = allowed")
        sa, control = _sa_login(kready_cluster, ns, kready_as_serviceaccount, kready_finding, **common)
        if sa is None:
            continue
        tries = rbac.exec_tries(sa, ns, post=kready_cluster.mode != "readonly")
        evidence = {"identity": control["expected"], "positive_control": control,
                    "attempts": [t.evidence() for t in tries],
                    "note": "the exec targets a pod name that does not exist: 404 means authorized, 403 refused"}
        _record_tries(
            kready_finding, ns, tries, bindings, evidence, common, what="pods/exec",
            fail=lambda allowed: (f"the default ServiceAccount of {ns} may exec into pods ({', '.join(allowed)} "
                                  "authorized): any pod without its own ServiceAccount can run commands in its "
                                  "neighbours"),
            passed=f"pods/exec in {ns} refused (403) for its default ServiceAccount")


def _record_tries(kready_finding, ns: str, tries, bindings, evidence: dict, common: dict, *, what: str, fail, passed: str):
    """One finding from requests made as the default ServiceAccount: any allowed → fail (naming the bindings that
    grant it), any neither refused nor allowed → inconclusive, all refused → pass."""
    allowed = [t.action for t in tries if t.allowed]
    undecided = [t for t in tries if t.undecided]
    if allowed:
        evidence["granted_by"] = _granted_by(bindings, ns)
        verdict, summary = Verdict.FAIL, fail(allowed)
    elif undecided:
        verdict, summary = Verdict.INCONCLUSIVE, ("no refusal and no acceptance for "
                                                  + ", ".join(f"{t.action} (HTTP {t.response.status})" for t in undecided))
    else:
        verdict, summary = Verdict.PASS, passed
    kready_finding(verdict, summary, target_namespace=ns,
                   request=[f"{t.method} {t.path}" for t in tries], response=[t.response.summary() for t in tries],
                   remediation=None if verdict is Verdict.PASS else _sa_remediation(ns, what),
                   evidence=evidence, **common)


def _token_remediation(ns: str) -> str:
    try:
        text = _SA_YAML.read_text().replace("namespace: app", f"namespace: {ns}")
    except OSError:
        text = f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: {ns}\n" \
               "automountServiceAccountToken: false\n"
    return (f"Stop mounting the default ServiceAccount's token into pods of {ns} (pods that need the API get a "
            f"ServiceAccount of their own and set automountServiceAccountToken: true):\n"
            f"kubectl patch serviceaccount default -n {ns} -p '{{\"automountServiceAccountToken\": false}}'\n---\n"
            + "\n".join(line for line in text.splitlines() if not line.startswith("#")))


@pytest.mark.kready_check("rbac.token-automount")
def test_default_serviceaccount_token_not_mounted(kready_cluster, rbac_targets, kready_finding):
    refs = (ref.CIS_TOKEN_MOUNT, ref.CIS_DEFAULT_SA, ref.NSA_SA_TOKENS)
    image = kready_cluster.settings.image
    api = kready_cluster.api_client()
    for ns in _targets(rbac_targets, kready_finding):
        plain = attempts.compliant_pod(image, attempts.probe_name("automount"))
        del plain["spec"]["automountServiceAccountToken"]  # what most workloads do: say nothing
        asked = attempts.compliant_pod(image, attempts.probe_name("automount-control"))
        asked["spec"]["automountServiceAccountToken"] = True
        attempt = attempts.attempt_create(kready_cluster, plain, ns)
        control = attempts.attempt_create(kready_cluster, asked, ns)
        try:
            sa_setting = api.raw("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default").get(
                "automountServiceAccountToken")
        except errors.APIError as e:
            sa_setting = f"unreadable ({type(e).__name__})"
        evidence = {"serviceaccount_automountServiceAccountToken": sa_setting,
                    "pod_without_setting": attempt.evidence() | {"token_volume": rbac.has_token_volume(attempt.obj)},
                    "positive_control_pod_asking_for_token": control.evidence() | {
                        "token_volume": rbac.has_token_volume(control.obj)}}
        if attempt.outcome in (attempts.NO_PERMISSION, attempts.NAMESPACE_GONE):
            verdict, summary = Verdict.NOT_APPLICABLE, f"cannot dry-run pods in {ns}: {attempt.describe()}"
        elif not (attempt.accepted and control.accepted):
            verdict, summary = Verdict.INCONCLUSIVE, (
                "the dry-run pods were not admitted, so what would be mounted is unknown: "
                f"{attempt.describe() if not attempt.accepted else control.describe()}")
        elif not rbac.has_token_volume(control.obj):
            verdict, summary = Verdict.INCONCLUSIVE, ("positive control failed: a pod asking for its token "
                                                      "(automountServiceAccountToken: true) gets none either, so the "
                                                      "absence proves nothing (ServiceAccount admission plugin off?)")
        elif rbac.has_token_volume(attempt.obj):
            verdict, summary = Verdict.FAIL, (f"a pod in {ns} that says nothing gets the default ServiceAccount's API "
                                              "token mounted (kube-api-access volume)")
        else:
            verdict, summary = Verdict.PASS, (f"a pod in {ns} that says nothing gets no token; one that asks does "
                                              "(positive control)")
        kready_finding(verdict, summary, target_namespace=ns, severity="medium", references=refs,
                       request=attempts.request_evidence("POST", f"/api/v1/namespaces/{ns}/pods", plain),
                       response=attempt.evidence(),
                       repro=(f"kubectl run kready-automount -n {ns} --image={image} --dry-run=server "
                              "-o jsonpath='{.spec.volumes[*].name}'"),
                       remediation=None if verdict is Verdict.PASS else _token_remediation(ns), evidence=evidence)


@pytest.mark.kready_check("rbac.cluster-admin-subjects")
@pytest.mark.kready_needs_permission("list", "clusterrolebindings", rbac.RBAC_GROUP)
def test_cluster_admin_only_for_system_subjects(bindings, kready_finding):
    cluster, namespaced = bindings["cluster"], bindings["namespaced"]
    stock = rbac.cluster_admin_bindings(cluster or [])
    evidence = {"positive_control": {"bindings_to_cluster_admin_seen": stock},
                "rolebindings_read": namespaced is not None}
    common = dict(severity="critical", references=(ref.CIS_CLUSTER_ADMIN, ref.CIS_SYSTEM_MASTERS, ref.NSA_RBAC),
                  request=[f"GET {RB}/clusterrolebindings", f"GET {RB}/rolebindings"],
                  repro=("kubectl get clusterrolebindings,rolebindings -A -o custom-columns='KIND:.kind,NS:.metadata."
                         "namespace,NAME:.metadata.name,ROLE:.roleRef.name,SUBJECTS:.subjects[*].name' | grep cluster-admin"))
    if not stock:
        kready_finding.inconclusive("positive control failed: no binding to the ClusterRole cluster-admin is visible "
                                    "(not even the stock one for system:masters), so an empty result proves nothing",
                                    evidence=evidence, **common)
    offenders = rbac.cluster_admin_offenders(cluster, namespaced or [])
    evidence["offenders"] = offenders
    response = {"clusterrolebindings": len(cluster), "rolebindings": None if namespaced is None else len(namespaced)}
    if offenders:
        names = sorted({o["binding"] for o in offenders})
        kready_finding.failed(
            f"cluster-admin is bound to {len(offenders)} non-system subject(s): "
            + "; ".join(f"{o['subject']} by {o['binding']} ({o['scope']})" for o in offenders),
            response=response, evidence=evidence,
            remediation=("Bind people and workloads to roles with only what they need, then delete the bindings to "
                         "cluster-admin: " + "; ".join(f"kubectl delete {n.split(' ', 1)[0].lower()} "
                                                        + (f"-n {n.split(' ', 1)[1].split('/')[0]} {n.split('/')[-1]}"
                                                           if '/' in n else n.split(' ', 1)[1]) for n in names)
                         + ". Break-glass access belongs to a group used only in emergencies, audited."),
            **common)
    else:
        note = "" if namespaced is not None else " (RoleBindings not readable: cluster-wide bindings only)"
        kready_finding.passed(f"cluster-admin is bound only to system subjects ({', '.join(stock)}){note}",
                              response=response, evidence=evidence, **common)


@pytest.mark.kready_check("rbac.wildcards")
@pytest.mark.kready_needs_permission("list", "clusterroles", rbac.RBAC_GROUP)
@pytest.mark.kready_needs_permission("list", "roles", rbac.RBAC_GROUP)
@pytest.mark.kready_needs_permission("list", "clusterrolebindings", rbac.RBAC_GROUP)
@pytest.mark.kready_needs_permission("list", "rolebindings", rbac.RBAC_GROUP)
def test_no_wildcard_roles_bound_to_workloads(kready_cluster, bindings, kready_finding):
    api = kready_cluster.api_client()
    cluster_roles = rbac.list_all(api, f"{RB}/clusterroles") or []
    roles = rbac.list_all(api, f"{RB}/roles") or []
    common = dict(severity="high", references=(ref.CIS_WILDCARDS, ref.NSA_RBAC),
                  request=[f"GET {RB}/clusterroles", f"GET {RB}/roles", f"GET {RB}/clusterrolebindings",
                           f"GET {RB}/rolebindings"],
                  repro=("kubectl get clusterroles,roles -A -o jsonpath='{range .items[*]}{.kind} {.metadata.namespace}/"
                         "{.metadata.name} {.rules}{\"\\n\"}{end}' | grep '\"\\*\"'"))
    control_role = next((r for r in cluster_roles if r["metadata"]["name"] == "cluster-admin"), None)
    control = {"cluster-admin_wildcard_rules_detected": bool(control_role and rbac.wildcard_rules(control_role))}
    if not control["cluster-admin_wildcard_rules_detected"]:
        kready_finding.inconclusive("positive control failed: the wildcard rules of the stock ClusterRole cluster-admin "
                                    "are not visible, so finding none elsewhere proves nothing",
                                    evidence={"positive_control": control}, **common)
    offenders, wildcard_roles = rbac.wildcard_offenders(cluster_roles, roles, bindings["cluster"] or [],
                                                        bindings["namespaced"] or [])
    evidence = {"positive_control": control, "offenders": offenders, "non_system_wildcard_roles": wildcard_roles}
    response = {"clusterroles": len(cluster_roles), "roles": len(roles)}
    if offenders:
        kready_finding.failed(
            f"{len(offenders)} binding(s) give workloads non-system roles with * verbs or resources: "
            + "; ".join(f"{o['role']} to {', '.join(o['subjects'])} by {o['binding']}" for o in offenders),
            response=response, evidence=evidence,
            remediation=("List the verbs, resources and resource names each workload uses (kubectl auth can-i --list "
                         "--as=system:serviceaccount:NS:SA shows today's reach) and replace the wildcards with them, "
                         "e.g. rules: [{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list, watch]}]"),
            **common)
    else:
        extra = f"; non-system wildcard roles bound to no workload: {', '.join(wildcard_roles)}" if wildcard_roles else ""
        kready_finding.passed("no non-system role with * verbs or resources is bound to a workload" + extra,
                              response=response, evidence=evidence, **common)


@pytest.mark.kready_check("rbac.anonymous")
def test_anonymous_requests_list_nothing(kready_cluster, rbac_targets, kready_finding):
    api = kready_cluster.api_client()
    anon = rbac.anonymous_client(api, mode=kready_cluster.mode)
    try:
        version = client.send(anon, "GET", "/version")
        anonymous_auth = ("enabled (anonymous requests are authenticated as system:anonymous)" if version.status != 401
                          else "disabled (401 for every anonymous request)")
        scopes: list[tuple[str | None, list[tuple[str, str]]]] = [(None, list(rbac.CLUSTER_LISTS))]
        for ns in rbac_targets:
            scopes.append((ns, [(r, f"/api/v1/namespaces/{ns}/{r}") for r in rbac.NAMESPACE_LISTS]))
        refs = (ref.CIS_ANONYMOUS, ref.NSA_AUTHN, ref.NSA_RBAC)
        for ns, paths in scopes:
            tries = rbac.list_tries(anon, paths)
            controls = rbac.list_tries(api, paths)
            listable = [c.action for c in controls if c.allowed]
            allowed = [t for t in tries if t.allowed]
            undecided = [t for t in tries if t.undecided]
            first = paths[0][1]
            evidence = {"anonymous_auth": anonymous_auth, "anonymous_version_status": version.status,
                        "attempts": [t.evidence() for t in tries],
                        "positive_control": {"listable_by_the_run": listable}}
            where = f"namespace {ns}" if ns else "cluster-wide"
            if allowed:
                verdict, summary = Verdict.FAIL, (f"anonymous requests may {', '.join(t.action for t in allowed)} "
                                                  f"({where})")
            elif not listable:
                verdict, summary = Verdict.INCONCLUSIVE, (f"positive control failed: the run itself may list none of "
                                                          f"these ({where}), so refusals of anonymous prove little")
            elif undecided:
                verdict, summary = Verdict.INCONCLUSIVE, ("no refusal and no acceptance for anonymous "
                                                          + ", ".join(f"{t.action} (HTTP {t.response.status})"
                                                                      for t in undecided))
            else:
                verdict, summary = Verdict.PASS, (f"anonymous requests list nothing ({where}: "
                                                  f"{len(tries)} lists refused; anonymous auth {anonymous_auth.split(' ')[0]})")
            kready_finding(
                verdict, summary, target_namespace=ns, severity="critical", references=refs,
                request=[f"GET {t.path} (no credentials)" for t in tries],
                response=[t.response.summary() for t in tries], evidence=evidence,
                repro=("curl -sk \"$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
                       f"{first}\""),
                remediation=None if verdict is Verdict.PASS else (
                    "Remove every binding to system:anonymous or system:unauthenticated (kubectl get "
                    "clusterrolebindings,rolebindings -A -o wide | grep -e system:anonymous -e system:unauthenticated), "
                    "and turn anonymous authentication off (kube-apiserver --anonymous-auth=false, or an "
                    "AuthenticationConfiguration allowing anonymous only for /livez, /readyz and /healthz)."))
    finally:
        anon.close()
