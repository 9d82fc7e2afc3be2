"""The cluster source against a scripted API: pagination, 410 restarts, coverage states and
the failures that must stop a scan. The real API server is in tests/integration."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from fault_api import HANG, MALFORMED, OK, RESET, TRUNCATED, FaultApi, Status
from kubeproof.sources import cluster
from kubeproof.sources.cluster import (
    BACKOFF_BASE_S,
    MAX_ATTEMPTS,
    METADATA_ONLY,
    RETRY_AFTER_CAP_S,
    ApiClient,
    ApiError,
    ClusterError,
    KindSpec,
    RetryPolicy,
    list_all,
    load_cluster,
    parse_retry_after,
)
from kubeproof.sources.kubeconfig import ClusterConnection

Handler = Callable[[dict[str, str], str], Any]
CONNECTION = ClusterConnection(
    server="http://127.0.0.1:1", cluster_name="c", context_name="ctx", source="kc"
)


class ScriptedClient(ApiClient):
    """Answers GETs from a table of path -> handler; an exception in the table is raised."""

    def __init__(self, routes: dict[str, Any]) -> None:
        super().__init__(CONNECTION)
        self.routes = routes
        self.calls: list[tuple[str, dict[str, str]]] = []

    def get(self, path: str, params: dict[str, str] | None = None, accept: str = "") -> Any:
        self.calls.append((path, dict(params or {})))
        route = self.routes.get(path)
        if route is None:
            raise ApiError(404, f"GET {path}: HTTP 404")
        if isinstance(route, Exception):
            raise route
        return route(params or {}, accept) if callable(route) else route


def page(items: list[Any] | None, token: str = "", kind: str = "PodList") -> dict[str, Any]:
    return {"kind": kind, "apiVersion": "v1", "metadata": {"continue": token}, "items": items}


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "managedFields": [{}]}, "spec": {}}


CORE = {
    "/api/v1": {
        "resources": [
            {"name": "pods", "kind": "Pod", "verbs": ["list"]},
            {"name": "pods/status", "kind": "Pod", "verbs": ["get"]},
            {"name": "secrets", "kind": "Secret", "verbs": ["list"]},
        ]
    }
}


def test_pages_are_followed_and_a_410_restarts_the_list_once() -> None:
    expired = {"done": False}

    def pods(params: dict[str, str], accept: str) -> Any:
        assert params["limit"] == "500"
        if params.get("continue") == "b" and not expired["done"]:
            expired["done"] = True
            raise ApiError(410, "Gone")
        return page([pod("x")], "b") if "continue" not in params else page([pod("y")])

    client = ScriptedClient({"/api/v1/pods": pods})
    listed = list_all(client, "/api/v1/pods")
    assert [item["metadata"]["name"] for item in listed.items] == ["x", "y"]
    assert len(client.calls) == 4  # x, 410, then x and y again from scratch


def test_a_second_410_is_an_error() -> None:
    def pods(params: dict[str, str], accept: str) -> Any:
        if "continue" in params:
            raise ApiError(410, "Gone")
        return page([pod("x")], "b")

    with pytest.raises(ApiError) as error:
        list_all(ScriptedClient({"/api/v1/pods": pods}), "/api/v1/pods")
    assert error.value.status == 410


def test_objects_get_kind_source_and_coverage_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    routes: dict[str, Any] = {
        **CORE,
        "/apis": {
            "groups": [
                {
                    "name": "apps",
                    "preferredVersion": {"version": "v1"},
                    "versions": [{"version": "v1"}],
                },
                {
                    "name": "batch",
                    "preferredVersion": {"version": "v1"},
                    "versions": [{"version": "v1"}],
                },
            ]
        },
        "/apis/apps/v1": {"resources": [{"name": "deployments", "kind": "Deployment",
                                         "verbs": ["list"]}]},
        "/apis/batch/v1": ApiError(503, "GET /apis/batch/v1: HTTP 503 Service Unavailable"),
        "/api/v1/pods": lambda params, accept: page([pod("web"), "junk"]),
        "/apis/apps/v1/deployments": ApiError(403, "Forbidden"),
        "/api/v1/secrets": lambda params, accept: page(None, kind="SecretList"),
    }  # fmt: skip
    specs = [
        KindSpec("Pod", ""),
        KindSpec("Secret", "", metadata_only=True),
        KindSpec("Service", ""),
        KindSpec("Deployment", "apps"),
        KindSpec("Job", "batch"),
        KindSpec("NetworkPolicy", "networking.k8s.io"),
    ]
    client = ScriptedClient(routes)
    monkeypatch.setattr(cluster, "ApiClient", lambda *a, **k: client)
    inventory = load_cluster(CONNECTION, specs=specs)
    states = {kind: (c.state, c.detail) for kind, c in inventory.coverage.kinds.items()}
    assert states["Pod"] == ("listed", "")
    assert states["Service"][0] == "not_served"
    assert states["Deployment"] == ("forbidden", "403 Forbidden")
    assert states["Job"][0] == "error" and "503" in states["Job"][1]
    assert states["NetworkPolicy"] == ("not_served", "API group networking.k8s.io is not served")
    # The server answered a metadata-only request with full Secrets: nothing is kept.
    assert states["Secret"][0] == "error" and "metadata-only" in states["Secret"][1]
    assert not inventory.of_kind("Secret")
    (web,) = inventory.of_kind("Pod")
    assert (web.api_version, web.kind, web.namespace) == ("v1", "Pod", "ns")
    assert web.extra["source"] == "cluster"
    assert "managedFields" not in web.metadata
    assert not inventory.coverage.kinds["Pod"].detail
    assert inventory.coverage.gap(["Deployment"]) == "Deployment forbidden (403 Forbidden)"
    assert inventory.coverage.gap(["Node"]) == "Node not read"


def test_metadata_only_secrets_take_their_type_from_the_field_selector() -> None:
    def secrets(params: dict[str, str], accept: str) -> Any:
        assert accept == METADATA_ONLY
        items = [{"metadata": {"name": "a", "uid": "1"}}, {"metadata": {"name": "t", "uid": "2"}}]
        if params.get("fieldSelector"):
            items = items[1:]
        return page(items, kind="PartialObjectMetadataList")

    client = ScriptedClient({**CORE, "/api/v1/secrets": secrets})
    resource = cluster.Resource(KindSpec("Secret", "", metadata_only=True), "v1", "secrets")
    result = cluster._read_kind(client, resource)
    assert (result.state, result.detail) == ("listed", "metadata only")
    types = {obj.name: obj.raw.get("type") for obj in result.objects}
    assert types == {"a": None, "t": "kubernetes.io/service-account-token"}


@pytest.mark.parametrize(
    "failure",
    [ClusterError("cannot reach the API server"), ClusterError("401 Unauthorized")],
)
def test_fatal_failures_stop_the_scan(
    failure: ClusterError, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ScriptedClient({**CORE, "/api/v1/pods": failure})
    monkeypatch.setattr(cluster, "ApiClient", lambda *a, **k: client)
    with pytest.raises(ClusterError):
        load_cluster(CONNECTION, specs=[KindSpec("Pod", "")])
    client.routes["/api/v1/pods"] = ApiError(403, "Forbidden")
    with pytest.raises(ClusterError, match="could not list any of the 1 kinds"):
        load_cluster(CONNECTION, specs=[KindSpec("Pod", "")])


# --- retries, against a local server that injects the faults (tests/fault_api.py) ----------


class Sleeps(list[float]):
    """Records the waits instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


PODS = "/api/v1/pods"


def client_for(api: FaultApi, sleeps: Sleeps, **options: Any) -> ApiClient:
    connection = ClusterConnection(server=api.url, cluster_name="c", context_name=None, source="k")
    return ApiClient(connection, sleep=sleeps, **options)


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    sleeps = Sleeps()
    with FaultApi({"pods": [Status(429, retry_after="120"), OK]}) as api:
        listed = client_for(api, sleeps).get(PODS)
        assert api.count(PODS) == 2
    assert listed["kind"] == "PodList"
    assert sleeps == [RETRY_AFTER_CAP_S]


def test_transient_server_errors_back_off_then_give_up_with_the_reason() -> None:
    sleeps = Sleeps()
    with FaultApi({"pods": [Status(503)]}) as api:
        with pytest.raises(ApiError) as error:
            client_for(api, sleeps).get(PODS)
        assert api.count(PODS) == MAX_ATTEMPTS
    assert error.value.status == 503
    assert re.fullmatch(
        rf"GET {PODS}: HTTP 503 Service Unavailable; gave up after {MAX_ATTEMPTS} attempts "
        r"in \d+\.\d s",
        error.value.detail,
    )
    assert len(sleeps) == MAX_ATTEMPTS - 1
    # Exponential backoff with jitter in [0.5, 1] of each step.
    for attempt, wait in enumerate(sleeps, start=1):
        full = BACKOFF_BASE_S * 2 ** (attempt - 1)
        assert full / 2 <= wait <= full


@pytest.mark.parametrize("code", [400, 403, 404, 410, 501])
def test_other_statuses_are_not_retried(code: int) -> None:
    sleeps = Sleeps()
    with FaultApi({"pods": [Status(code), OK]}) as api:
        with pytest.raises(ApiError) as error:
            client_for(api, sleeps).get(PODS)
        assert api.count(PODS) == 1
    assert error.value.status == code and sleeps == []


def test_a_wait_beyond_the_budget_is_not_started() -> None:
    sleeps = Sleeps()
    with FaultApi({"pods": [Status(429, retry_after="10"), OK]}) as api:
        with pytest.raises(ApiError) as error:
            client_for(api, sleeps, retry=RetryPolicy(budget_s=5)).get(PODS)
        assert api.count(PODS) == 1
    assert "gave up after 1 attempt in " in error.value.detail
    assert error.value.detail.endswith("the server asking to wait 10 s")
    assert sleeps == []


@pytest.mark.parametrize("fault", [RESET, TRUNCATED])
def test_dropped_connections_are_retried(fault: Any) -> None:
    sleeps = Sleeps()
    with FaultApi({"pods": [fault, OK]}) as api:
        assert client_for(api, sleeps).get(PODS)["kind"] == "PodList"
        assert api.count(PODS) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [(RESET, "the connection was dropped"), (TRUNCATED, "the response was cut short")],
)
def test_dropped_connections_give_up_with_the_reason(fault: Any, reason: str) -> None:
    with FaultApi({"pods": [fault]}) as api:
        with pytest.raises(ApiError) as error:
            client_for(api, Sleeps()).get(PODS)
        assert api.count(PODS) == MAX_ATTEMPTS
    assert error.value.detail.startswith(f"GET {PODS}: {reason}")
    assert f"gave up after {MAX_ATTEMPTS} attempts" in error.value.detail


def test_a_timeout_is_not_retried() -> None:
    sleeps = Sleeps()
    with FaultApi({"pods": [HANG, OK]}) as api:
        with pytest.raises(ApiError) as error:
            client_for(api, sleeps, timeout_s=0.3).get(PODS)
        assert api.count(PODS) == 1
    assert error.value.detail == f"GET {PODS}: timed out after 0.3 s"
    assert sleeps == []


def test_a_malformed_body_is_an_error_not_a_crash() -> None:
    with FaultApi({"pods": [MALFORMED]}) as api:
        with pytest.raises(ApiError, match="the response is not JSON"):
            client_for(api, Sleeps()).get(PODS)
        assert api.count(PODS) == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("Sat, 28 Nov 2026 12:00:07 GMT", 7.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # in the past: retry now
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == seconds


def test_backoff_is_capped() -> None:
    policy = RetryPolicy()
    assert policy.delay(1, None, 1.0) == BACKOFF_BASE_S
    assert policy.delay(30, None, 1.0) == policy.backoff_cap_s
    assert policy.delay(1, -4.0, 1.0) == 0.0
