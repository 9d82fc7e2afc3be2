"""Objects from a live cluster: discovery, then one paginated LIST per kind the checks use.

Coverage is recorded per kind (listed, forbidden, not_served, error) so that checks needing
a kind that could not be read report not_evaluated instead of pass. A server that cannot be
reached at all, or that rejects the credentials (401), stops the scan: a scan that read
nothing must never look clean.

Every request is an idempotent GET, so a throttled (429), failing (500, 502, 503, 504) or
dropped request (connection reset, response cut short) is tried again, with exponential
backoff or after the server's Retry-After, a bounded number of times within a time budget.
When the retries run out, the kind is recorded as an error with the reason. A request that
times out is not retried: it already cost a whole timeout.

Secret data is never read: Secrets are listed as metadata only (PartialObjectMetadata), and
not at all when the server does not honour that.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

from kubeproof.bounded import byte_size
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.sources import REQUEST_TIMEOUT_S
from kubeproof.sources.kubeconfig import ClusterConnection, ssl_context

SOURCE = "cluster"  # obj.extra["source"] for every object read from a cluster
PAGE_SIZE = 500
# A page of 500 objects at etcd's 1.5 MiB limit is 750 MiB: a larger answer is no page.
MAX_RESPONSE_BYTES = 1 << 30
WORKERS = 4
MAX_REQUESTS_PER_SECOND = 50.0
# Retries of one GET: attempts in all, the first backoff (doubling, with jitter, up to the
# cap), the longest Retry-After honoured, and the time after which no retry starts.
MAX_ATTEMPTS = 4
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0
RETRY_AFTER_CAP_S = 10.0
RETRY_BUDGET_S = 30.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"


class ClusterError(Exception):
    """The cluster cannot be scanned at all (unreachable, TLS failure, credentials refused)."""


class ApiError(Exception):
    """One request failed; the kind it was for is recorded as forbidden, not served or error."""

    def __init__(self, status: int, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        # Worth another try (throttled, a transient server error, a dropped connection);
        # `retry_after` is the server's own wait in seconds, when it gave one.
        self.retryable = retryable
        self.retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = MAX_ATTEMPTS
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_cap_s: float = BACKOFF_CAP_S
    retry_after_cap_s: float = RETRY_AFTER_CAP_S
    budget_s: float = RETRY_BUDGET_S

    def delay(self, attempt: int, retry_after: float | None, jitter: float) -> float:
        """The wait before attempt `attempt + 1`: the server's Retry-After (capped) when it
        gave one, else exponential backoff scaled by `jitter` in [0.5, 1]."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        return min(self.backoff_base_s * 2.0 ** (attempt - 1), self.backoff_cap_s) * jitter


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


@dataclass(frozen=True)
class KindSpec:
    kind: str
    group: str  # "" for the core group
    metadata_only: bool = False


# Every kind a check or an analysis reads. Node and the rest are not needed yet.
SCANNED_KINDS: tuple[KindSpec, ...] = (
    KindSpec("Namespace", ""),
    KindSpec("Pod", ""),
    KindSpec("Service", ""),
    KindSpec("ServiceAccount", ""),
    KindSpec("ConfigMap", ""),
    KindSpec("Secret", "", metadata_only=True),
    KindSpec("ReplicationController", ""),
    KindSpec("PodTemplate", ""),
    KindSpec("LimitRange", ""),
    KindSpec("Deployment", "apps"),
    KindSpec("ReplicaSet", "apps"),
    KindSpec("StatefulSet", "apps"),
    KindSpec("DaemonSet", "apps"),
    KindSpec("Job", "batch"),
    KindSpec("CronJob", "batch"),
    KindSpec("NetworkPolicy", "networking.k8s.io"),
    KindSpec("Ingress", "networking.k8s.io"),
    KindSpec("PodDisruptionBudget", "policy"),
    KindSpec("HorizontalPodAutoscaler", "autoscaling"),
    KindSpec("Role", "rbac.authorization.k8s.io"),
    KindSpec("RoleBinding", "rbac.authorization.k8s.io"),
    KindSpec("ClusterRole", "rbac.authorization.k8s.io"),
    KindSpec("ClusterRoleBinding", "rbac.authorization.k8s.io"),
    KindSpec("ValidatingWebhookConfiguration", "admissionregistration.k8s.io"),
    KindSpec("MutatingWebhookConfiguration", "admissionregistration.k8s.io"),
    KindSpec("ValidatingAdmissionPolicy", "admissionregistration.k8s.io"),
    KindSpec("ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io"),
)


# --- HTTP -----------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the bearer token to wherever it points: treat it as an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _RateLimit:
    """At most `per_second` request starts per second, across threads."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


class ApiClient:
    """GETs JSON from one API server as one identity."""

    def __init__(
        self,
        connection: ClusterConnection,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        max_requests_per_second: float = MAX_REQUESTS_PER_SECOND,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self._timeout_s = timeout_s
        self._rate = _RateLimit(max_requests_per_second)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if connection.server.startswith("https://"):
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context(connection)))
        self._opener = urllib.request.build_opener(*handlers)

    def get(self, path: str, params: dict[str, str] | None = None, accept: str = "") -> Any:
        """One GET, tried again while the failure is transient and the budget allows."""
        policy = self._retry
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                return self._get_once(path, params, accept)
            except ApiError as error:
                if not error.retryable:
                    raise
                elapsed = time.monotonic() - started
                wait = policy.delay(attempt, error.retry_after, random.uniform(0.5, 1.0))
                if attempt >= policy.max_attempts or elapsed + wait > policy.budget_s:
                    raise ApiError(error.status, _gave_up(error, attempt, elapsed)) from None
            self._sleep(wait)
            attempt += 1

    def open_stream(
        self,
        path: str,
        params: dict[str, str],
        accept: str = "",
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> http.client.HTTPResponse:
        """One GET whose body is read as it arrives (a watch), tried once: the caller reads
        it line by line, closes it, and decides about retrying."""
        request = self._request(path, params, accept)
        self._rate.wait()
        try:
            response: http.client.HTTPResponse = self._opener.open(request, timeout=timeout_s)
        except urllib.error.HTTPError as error:
            raise self._http_error(error, path) from None
        except urllib.error.URLError as error:
            raise self._transport_error(error.reason, path) from None
        except (OSError, http.client.HTTPException) as error:
            raise self._transport_error(error, path) from None
        return response

    def _request(
        self, path: str, params: dict[str, str] | None, accept: str
    ) -> urllib.request.Request:
        url = self.connection.server + path + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(url, method="GET")
        request.add_header("Accept", accept or "application/json")
        request.add_header("User-Agent", "kubeproof")
        if self.connection.token:
            request.add_header("Authorization", f"Bearer {self.connection.token}")
        if self.connection.impersonate_user:
            request.add_header("Impersonate-User", self.connection.impersonate_user)
            for group in self.connection.impersonate_groups:
                request.add_header("Impersonate-Group", group)
        return request

    def _get_once(self, path: str, params: dict[str, str] | None, accept: str) -> Any:
        request = self._request(path, params, accept)
        self._rate.wait()
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                body = _read_limited(response, path)
        except urllib.error.HTTPError as error:
            raise self._http_error(error, path) from None
        except urllib.error.URLError as error:
            raise self._transport_error(error.reason, path) from None
        except (OSError, http.client.HTTPException) as error:
            raise self._transport_error(error, path) from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise ApiError(0, f"GET {path}: the response is not JSON") from None

    def _http_error(self, error: urllib.error.HTTPError, path: str) -> Exception:
        retry_after = parse_retry_after(error.headers.get("Retry-After") if error.headers else None)
        # The error body is never read; one that breaks while closing changes nothing.
        with contextlib.suppress(OSError, http.client.HTTPException):
            error.close()
        if error.code == 401:
            return ClusterError(
                f"the API server at {self.connection.server} refused the credentials of "
                f"{self._identity()} (401 Unauthorized)"
            )
        api_error = ApiError(
            error.code,
            f"GET {path}: HTTP {error.code} {error.reason}",
            retryable=error.code in RETRYABLE_STATUSES,
        )
        api_error.retry_after = retry_after
        return api_error

    def _transport_error(self, reason: object, path: str) -> Exception:
        """A failure below HTTP: a timeout, a dropped connection (worth a retry), or a server
        that cannot be reached at all (which stops the scan)."""
        if isinstance(reason, TimeoutError):
            return ApiError(0, f"GET {path}: timed out after {self._timeout_s:g} s")
        if isinstance(reason, http.client.IncompleteRead):
            return ApiError(0, f"GET {path}: the response was cut short", retryable=True)
        if isinstance(
            reason,
            ConnectionResetError
            | ConnectionAbortedError
            | BrokenPipeError
            | ssl.SSLEOFError
            | http.client.HTTPException,
        ):
            return ApiError(0, f"GET {path}: the connection was dropped ({reason})", retryable=True)
        return self._unreachable(reason)

    def _unreachable(self, reason: object) -> ClusterError:
        server = self.connection.server
        if isinstance(reason, ssl.SSLError):
            return ClusterError(f"TLS with the API server at {server} failed: {reason}")
        return ClusterError(f"cannot reach the API server at {server}: {reason}")

    def _identity(self) -> str:
        if self.connection.context_name is None:
            return self.connection.source
        return f"context {self.connection.context_name!r}"


# --- discovery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    spec: KindSpec
    api_version: str  # "v1", "apps/v1"
    plural: str

    @property
    def path(self) -> str:
        prefix = "/api" if "/" not in self.api_version else "/apis"
        return f"{prefix}/{self.api_version}/{quote(self.plural)}"


@dataclass
class Discovery:
    resources: dict[str, Resource] = field(default_factory=dict)
    # Kinds that could not be discovered: kind -> (coverage state, detail)
    missing: dict[str, tuple[str, str]] = field(default_factory=dict)


def discover(client: ApiClient, specs: Iterable[KindSpec] = SCANNED_KINDS) -> Discovery:
    """Where each kind is served: the group's preferred version first, then its others."""
    wanted: dict[str, list[KindSpec]] = {}
    for spec in specs:
        wanted.setdefault(spec.group, []).append(spec)
    versions_of: dict[str, list[str]] = {"": ["v1"]}
    discovery = Discovery()
    if set(wanted) - {""}:
        try:
            groups = client.get("/apis")
        except ApiError as error:
            _mark_missing(discovery, [s for g, ss in wanted.items() if g for s in ss], error)
            groups = {}
        for group in as_list(as_dict(groups).get("groups")):
            group = as_dict(group)
            name = as_str(group.get("name"))
            if name is None:
                continue
            preferred = as_str(as_dict(group.get("preferredVersion")).get("version"))
            others = [as_str(as_dict(v).get("version")) for v in as_list(group.get("versions"))]
            ordered = [preferred] if preferred else []
            ordered += [v for v in others if v and v != preferred]
            versions_of[name] = ordered
    for group, specs_in_group in wanted.items():
        _discover_group(client, discovery, group, versions_of.get(group), specs_in_group)
    return discovery


def _discover_group(
    client: ApiClient,
    discovery: Discovery,
    group: str,
    versions: list[str] | None,
    specs: list[KindSpec],
) -> None:
    pending = [s for s in specs if s.kind not in discovery.missing]
    if versions is None:
        for spec in pending:
            discovery.missing[spec.kind] = ("not_served", f"API group {group} is not served")
        return
    for version in versions:
        if not pending:
            return
        api_version = f"{group}/{version}" if group else version
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        try:
            listing = client.get(path)
        except ApiError as error:
            _mark_missing(discovery, pending, error)
            return
        plural_of = _listable_kinds(listing)
        for spec in list(pending):
            if spec.kind in plural_of:
                discovery.resources[spec.kind] = Resource(spec, api_version, plural_of[spec.kind])
                pending.remove(spec)
    for spec in pending:
        discovery.missing[spec.kind] = ("not_served", "not in API discovery")


def _listable_kinds(listing: Any) -> dict[str, str]:
    plural_of: dict[str, str] = {}
    for resource in as_list(as_dict(listing).get("resources")):
        resource = as_dict(resource)
        name, kind = as_str(resource.get("name")), as_str(resource.get("kind"))
        if name and kind and "/" not in name and "list" in as_list(resource.get("verbs")):
            plural_of.setdefault(kind, name)
    return plural_of


def _mark_missing(discovery: Discovery, specs: Iterable[KindSpec], error: ApiError) -> None:
    state, detail = _state_of(error)
    for spec in specs:
        discovery.missing[spec.kind] = (state, f"discovery: {detail}")


def _state_of(error: ApiError) -> tuple[str, str]:
    if error.status == 403:
        return "forbidden", "403 Forbidden"
    if error.status == 404:
        return "not_served", "404 Not Found"
    return "error", error.detail


# --- listing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    api_version: str
    items: list[dict[str, Any]]
    list_kind: str
    resource_version: str = ""  # of the list as a whole: where a watch starts from


def list_all(
    client: ApiClient,
    path: str,
    *,
    accept: str = "",
    params: dict[str, str] | None = None,
    each: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Listed:
    """Every page of a LIST. A 410 Gone (the continue token expired) restarts it once.
    `each` is applied to every item as its page arrives (the agent makes them compact, so
    that a large list is never held whole as parsed)."""
    for attempt in (1, 2):
        items: list[dict[str, Any]] = []
        token: str | None = None
        try:
            while True:
                query = {"limit": str(PAGE_SIZE), **(params or {})}
                if token:
                    query["continue"] = token
                page = client.get(path, query, accept)
                # An empty list may say `items: null`.
                if not isinstance(page, dict) or not isinstance(page.get("items") or [], list):
                    raise ApiError(0, f"GET {path}: not a list response")
                for item in as_list(page.get("items")):
                    if isinstance(item, dict):
                        metadata = item.get("metadata")
                        if isinstance(metadata, dict):
                            # Half the bytes of a Pod and never judged: dropped page by page,
                            # so a large list never holds them all at once.
                            metadata.pop("managedFields", None)
                        items.append(item if each is None else each(item))
                token = as_str(as_dict(page.get("metadata")).get("continue")) or None
                if token is None:
                    return Listed(
                        as_str(page.get("apiVersion")) or "",
                        items,
                        as_str(page.get("kind")) or "",
                        as_str(as_dict(page.get("metadata")).get("resourceVersion")) or "",
                    )
        except ApiError as error:
            if error.status != 410 or attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _objects(resource: Resource, listed: Listed) -> list[K8sObject]:
    objects = []
    for item in listed.items:
        raw = dict(item)
        # Items of a List carry no kind or apiVersion of their own.
        raw["kind"] = as_str(raw.get("kind")) or resource.spec.kind
        raw["apiVersion"] = as_str(raw.get("apiVersion")) or resource.api_version
        obj = K8sObject.from_raw(raw)
        obj.extra["source"] = SOURCE
        objects.append(obj)
    return objects


def _metadata_only_objects(client: ApiClient, resource: Resource) -> list[K8sObject]:
    """Secrets as metadata only; `type` is learnt from a field selector, never from data."""
    listed = list_all(client, resource.path, accept=METADATA_ONLY)
    token_secrets = list_all(
        client,
        resource.path,
        accept=METADATA_ONLY,
        params={"fieldSelector": f"type={SERVICE_ACCOUNT_TOKEN_TYPE}"},
    )
    for response in (listed, token_secrets):
        if response.list_kind != "PartialObjectMetadataList":
            raise ApiError(0, "the server does not serve metadata-only lists; Secrets not read")
    token_uids = {as_str(as_dict(item.get("metadata")).get("uid")) for item in token_secrets.items}
    objects = []
    for item in listed.items:
        metadata = {k: v for k, v in as_dict(item.get("metadata")).items() if k != "managedFields"}
        raw: dict[str, Any] = {
            "apiVersion": resource.api_version,
            "kind": resource.spec.kind,
            "metadata": metadata,
        }
        if as_str(metadata.get("uid")) in token_uids:
            raw["type"] = SERVICE_ACCOUNT_TOKEN_TYPE
        obj = K8sObject.from_raw(raw)
        obj.extra["source"] = SOURCE
        obj.extra["metadata_only"] = True
        objects.append(obj)
    return objects


@dataclass(frozen=True)
class _KindResult:
    kind: str
    objects: list[K8sObject]
    state: str
    detail: str = ""


def _read_kind(client: ApiClient, resource: Resource) -> _KindResult:
    kind = resource.spec.kind
    try:
        if resource.spec.metadata_only:
            objects = _metadata_only_objects(client, resource)
            return _KindResult(kind, objects, "listed", "metadata only")
        return _KindResult(kind, _objects(resource, list_all(client, resource.path)), "listed")
    except ApiError as error:
        state, detail = _state_of(error)
        return _KindResult(kind, [], state, detail)


def load_cluster(
    connection: ClusterConnection,
    *,
    specs: Iterable[KindSpec] = SCANNED_KINDS,
    workers: int = WORKERS,
    max_requests_per_second: float = MAX_REQUESTS_PER_SECOND,
    timeout_s: float = REQUEST_TIMEOUT_S,
    retry: RetryPolicy | None = None,
) -> Inventory:
    """Everything the checks read, with per-kind coverage. Raises ClusterError when the
    server cannot be reached or refuses the credentials, or when no kind could be read."""
    specs = tuple(specs)
    client = ApiClient(
        connection,
        timeout_s=timeout_s,
        max_requests_per_second=max_requests_per_second,
        retry=retry,
    )
    # Fails fast, before any thread starts, when the server is unreachable or says 401.
    discovery = discover(client, specs)
    coverage = Coverage(complete_by_default=False)
    for kind, (state, detail) in discovery.missing.items():
        coverage.record(kind, state, detail)
    inventory = Inventory(coverage=coverage)
    resources = [discovery.resources[s.kind] for s in specs if s.kind in discovery.resources]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubeproof-list") as pool:
        futures = [pool.submit(_read_kind, client, resource) for resource in resources]
        try:
            results = [future.result() for future in futures]
        except ClusterError:
            pool.shutdown(cancel_futures=True)
            raise
    for result in results:
        coverage.record(result.kind, result.state, result.detail)
        for obj in result.objects:
            inventory.add(obj)
    if not any(entry.complete for entry in coverage.kinds.values()):
        raise ClusterError(_nothing_read(connection, coverage))
    return inventory


def _nothing_read(connection: ClusterConnection, coverage: Coverage) -> str:
    states = sorted({entry.state for entry in coverage.kinds.values()})
    who = f" as {connection.impersonate_user}" if connection.impersonate_user else ""
    message = (
        f"could not list any of the {len(coverage.kinds)} kinds kubeproof reads from "
        f"{connection.server}{who} ({', '.join(states)})"
    )
    errors = [entry for entry in coverage.kinds.values() if entry.state == "error"]
    if errors:
        first = errors[0]
        message += f"; for example {first.kind}: {first.detail}"
    if "forbidden" in states:
        message += (
            ": check the identity's RBAC "
            "(deploy/rbac/scanner-clusterrole.yaml is the read-only role kubeproof needs)"
        )
    return message


def _gave_up(error: ApiError, attempts: int, elapsed: float) -> str:
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    asked = f", the server asking to wait {error.retry_after:g} s" if error.retry_after else ""
    return f"{error.detail}; gave up after {tries} in {elapsed:.1f} s{asked}"


def _read_limited(response: http.client.HTTPResponse, path: str) -> bytes:
    """The body, read a MiB at a time, whatever length the server announced."""
    chunks, total = [], 0
    while chunk := response.read(1 << 20):
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            limit = byte_size(MAX_RESPONSE_BYTES)
            raise ApiError(0, f"GET {path}: the response is larger than {limit}")
        chunks.append(chunk)
    if response.length:  # read by the MiB, a body cut short ends early instead of raising
        raise http.client.IncompleteRead(b"".join(chunks), response.length)
    return b"".join(chunks)
