"""`kubeproof webhook serve` and `kubeproof webhook manifests`: the admission webhook."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from kubeproof.admission.decide import Decider, NamespaceLabelCache
from kubeproof.admission.evidence import (
    BATCH_SIZE,
    EXCEPTIONS_REFRESH_S,
    FLUSH_INTERVAL_S,
    DecisionRecorder,
    StoreExceptions,
)
from kubeproof.admission.manifests import DEFAULT_IMAGE, DEFAULT_POLICY, ManifestOptions, render
from kubeproof.admission.policy import (
    Policy,
    PolicyError,
    load_policy,
    policy_from_text,
    read_policy_text,
)
from kubeproof.admission.server import AdmissionServer, CertificateReloader, TlsError
from kubeproof.bounded import UnreadableFile, read_ca_bundle
from kubeproof.cli import database
from kubeproof.cli.errors import EXIT_CLEAN, EXIT_FAILURES, UsageError
from kubeproof.cli.server_options import add_server_arguments
from kubeproof.serving import log_line
from kubeproof.sources.kubeconfig import IN_CLUSTER_NAME
from kubeproof.store import ENVIRONMENT_VARIABLE

if TYPE_CHECKING:
    from kubeproof.store.db import Store


def register(commands: Any) -> None:
    webhook = commands.add_parser("webhook", help="validating admission webhook (SOC 2 CC6.8)")
    actions = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)

    serve = actions.add_parser("serve", help="serve AdmissionReview over HTTPS")
    serve.add_argument("--policy", required=True, metavar="FILE", help="admission policy YAML")
    add_server_arguments(serve, port=8443)
    serve.add_argument(
        "--namespace-labels",
        action="store_true",
        help="look up namespace labels in the cluster (for policy label selectors and "
        "pod-security.kubernetes.io labels); uses --kubeconfig, $KUBECONFIG or in-cluster",
    )
    serve.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for --namespace-labels")
    serve.add_argument("--context", metavar="NAME", help="kubeconfig context")
    database.add_db_argument(serve)
    database.add_signing_key_argument(serve)
    serve.add_argument(
        "--cluster-name",
        metavar="NAME",
        default=IN_CLUSTER_NAME,
        help="with a store: the cluster its decisions are filed under, as `scan --cluster` "
        f"files scans (default {IN_CLUSTER_NAME})",
    )
    serve.add_argument(
        "--flush-seconds",
        type=_positive_float,
        default=FLUSH_INTERVAL_S,
        metavar="S",
        help=f"with a store: write buffered decisions every S seconds (default {FLUSH_INTERVAL_S})",
    )
    serve.add_argument(
        "--flush-decisions",
        type=_positive_int,
        default=BATCH_SIZE,
        metavar="N",
        help=f"with a store: or as soon as N are buffered; one ledger entry per batch "
        f"(default {BATCH_SIZE})",
    )
    serve.add_argument(
        "--exceptions-refresh",
        type=_positive_float,
        default=EXCEPTIONS_REFRESH_S,
        metavar="S",
        help="with a store: re-read its exceptions every S seconds "
        f"(default {EXCEPTIONS_REFRESH_S:.0f})",
    )
    serve.set_defaults(run=run_serve)

    manifests = actions.add_parser("manifests", help="print manifests to deploy the webhook")
    manifests.add_argument("--namespace", default="kubeproof", help="namespace to run in")
    manifests.add_argument("--image", default=DEFAULT_IMAGE, help="kubeproof image")
    manifests.add_argument("--ca-bundle", metavar="FILE", help="PEM CA that signed the cert")
    manifests.add_argument("--policy", metavar="FILE", help="policy to ship (validated)")
    manifests.add_argument(
        "--failure-policy", choices=("Fail", "Ignore"), default="Fail", help="when unreachable"
    )
    manifests.add_argument(
        "--cert-manager",
        action="store_true",
        help="add a cert-manager CA, Issuer and serving Certificate, and let its CA injector "
        "fill caBundle (instead of --ca-bundle)",
    )
    manifests.add_argument(
        "--db-secret",
        metavar="NAME",
        help="record decisions in the evidence store whose URL is key `url` of this Secret "
        "(in --namespace)",
    )
    manifests.add_argument(
        "--cluster-name", metavar="NAME", help="with --db-secret: the cluster's name in the store"
    )
    manifests.set_defaults(run=run_manifests)

    check = actions.add_parser("check-policy", help="validate a policy file and show it")
    check.add_argument("policy", metavar="FILE")
    check.set_defaults(run=run_check_policy)


MAX_SECONDS = 86_400.0  # a day: beyond that an interval is a mistake, not a setting
MAX_BATCH = 100_000


def _positive_float(text: str) -> float:
    """Seconds: a finite number above 0, at most a day."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"not a number of seconds above 0 and at most {MAX_SECONDS:g}: {text[:40]!r}"
        )
    return value


def _positive_int(text: str) -> int:
    """A count: a whole number from 1 to MAX_BATCH."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"not a whole number from 1 to {MAX_BATCH}: {text[:40]!r}")
    return int(text)


def _policy(path: str) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as error:
        raise UsageError(str(error)) from None


def run_serve(arguments: argparse.Namespace) -> int:
    policy = _policy(arguments.policy)
    if policy.uses_namespace_labels and not arguments.namespace_labels:
        raise UsageError(
            f"policy {arguments.policy}: a namespaces[].selector needs namespace labels: "
            "pass --namespace-labels"
        )
    labels = _label_lookup(arguments) if arguments.namespace_labels else None
    try:
        certificates = CertificateReloader(arguments.tls_cert, arguments.tls_key)
    except TlsError as error:
        raise UsageError(str(error)) from None
    if not arguments.cluster_name.strip():
        raise UsageError("--cluster-name must not be empty")
    # Opened before listening: a bad URL or an unreachable store stops here (exit 2);
    # outages after this are buffered and retried.
    store = _evidence_store(arguments)
    exceptions = recorder = None
    if store is not None:
        exceptions = StoreExceptions(
            store, interval_s=arguments.exceptions_refresh, log=log_line
        ).start()
        recorder = DecisionRecorder(
            store,
            cluster=arguments.cluster_name,
            webhook=socket.gethostname(),
            flush_interval_s=arguments.flush_seconds,
            batch_size=arguments.flush_decisions,
            log=log_line,
        ).start()
    try:
        server = AdmissionServer(
            (arguments.host, arguments.port),
            Decider(policy, labels, exceptions=exceptions),
            certificates,
            evidence=recorder,
        )
    except OSError as error:
        _close_evidence(store, recorder, exceptions)  # nothing was decided: nothing lost
        raise UsageError(
            f"cannot listen on {arguments.host}:{arguments.port}: {error.strerror}"
        ) from None
    _stop_on_sigterm(server)
    _tune_for_latency()
    for check_id in policy.left_to_scan:
        print(
            f"kubeproof webhook: {check_id} needs more than one object; left to scan",
            file=sys.stderr,
        )
    print(
        f"kubeproof webhook: {len(policy.checks)} checks, default mode {policy.default_mode}, "
        f"listening on https://{arguments.host}:{server.port}/validate",
        file=sys.stderr,
        flush=True,
    )
    if store is not None:
        print(
            f"kubeproof webhook: recording decisions in {store.url} "
            f"(every {arguments.flush_seconds:g} s or {arguments.flush_decisions} decisions)",
            file=sys.stderr,
            flush=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return _close_evidence(store, recorder, exceptions)


def _evidence_store(arguments: argparse.Namespace) -> Store | None:
    """The store decisions are recorded in (--db or $KUBEPROOF_DB), with the signing key
    loaded: a bad URL, an unreachable database or a bad key stop here (exit 2)."""
    if not (arguments.db or os.environ.get(ENVIRONMENT_VARIABLE)):
        return None
    return database.open_for_writing(arguments)


def _close_evidence(
    store: Store | None, recorder: DecisionRecorder | None, exceptions: StoreExceptions | None
) -> int:
    """Flush what is buffered; exit 1 when decisions could not be recorded."""
    if store is None:
        return EXIT_CLEAN
    if exceptions is not None:
        exceptions.close()
    lost = recorder.close() if recorder is not None else 0
    if recorder is not None and not lost:
        print(
            f"kubeproof webhook: {recorder.state.recorded} decisions recorded in "
            f"{recorder.state.batches} ledger entries",
            file=sys.stderr,
        )
    store.close()
    return EXIT_FAILURES if lost else EXIT_CLEAN


def _tune_for_latency() -> None:
    # Requests are short and many threads wait for the GIL: hand it over sooner than the
    # default 5 ms, which otherwise shows up directly in the p99.
    sys.setswitchinterval(0.0005)
    # Everything loaded so far (catalogue, policy) lives as long as the process: keep the
    # collector from walking it on every full collection.
    gc.collect()
    gc.freeze()


def _label_lookup(arguments: argparse.Namespace) -> NamespaceLabelCache:
    # Imported here: the cluster client is only needed with --namespace-labels.
    from kubeproof.admission.namespaces import cluster_namespace_labels
    from kubeproof.sources.kubeconfig import KubeconfigError, load_connection

    try:
        connection = load_connection(arguments.kubeconfig, arguments.context)
    except KubeconfigError as error:
        raise UsageError(str(error)) from None
    return cluster_namespace_labels(connection)


def _stop_on_sigterm(server: AdmissionServer) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def run_manifests(arguments: argparse.Namespace) -> int:
    ca_bundle = None
    if arguments.ca_bundle:
        try:
            ca_bundle = read_ca_bundle(arguments.ca_bundle, f"--ca-bundle {arguments.ca_bundle}")
        except UnreadableFile as refused:
            raise UsageError(str(refused)) from None
    if arguments.cert_manager and arguments.ca_bundle:
        raise UsageError("--cert-manager and --ca-bundle: choose one (cert-manager injects the CA)")
    if arguments.cluster_name is not None and not arguments.db_secret:
        raise UsageError("--cluster-name needs --db-secret (decisions are only filed in a store)")
    policy_text = DEFAULT_POLICY
    if arguments.policy:
        try:  # validated, and shipped as written
            policy_text = read_policy_text(arguments.policy)
            policy_from_text(policy_text, arguments.policy)
        except PolicyError as error:
            raise UsageError(str(error)) from None
    options = ManifestOptions(
        namespace=arguments.namespace,
        image=arguments.image,
        ca_bundle=ca_bundle,
        policy_text=policy_text,
        failure_policy=arguments.failure_policy,
        db_secret=arguments.db_secret,
        cluster_name=arguments.cluster_name,
        cert_manager=arguments.cert_manager,
    )
    sys.stdout.write(render(options))
    if ca_bundle is None and not arguments.cert_manager:
        print(
            "kubeproof webhook: no --ca-bundle: set webhooks[0].clientConfig.caBundle "
            "(or let cert-manager's CA injector do it) before the API server can call it",
            file=sys.stderr,
        )
    return EXIT_CLEAN


def run_check_policy(arguments: argparse.Namespace) -> int:
    policy = _policy(arguments.policy)
    print(f"policy {arguments.policy}: valid")
    print(f"  default mode: {policy.default_mode}; fail closed: {policy.fail_closed}")
    print(f"  checks judged at admission ({len(policy.checks)}):")
    for check in policy.checks:
        print(f"    {check.id}")
    if policy.images.restricts_sources:
        print("    images.allowed-source")
    if policy.images.requires_signatures:
        print("    images.signed")
    _print_image_rules(policy)
    if policy.left_to_scan:
        print(
            f"  left to scan (need more than the admitted object): {', '.join(policy.left_to_scan)}"
        )
    for rule in policy.namespaces:
        print(f"  namespaces {list(rule.names) or '*'} selector {rule.selector}: {rule.mode}")
    return EXIT_CLEAN


def _print_image_rules(policy: Policy) -> None:
    images = policy.images
    print("  image rules:")
    if images.restricts_sources:
        registries = ", ".join(images.allowed_registries) or "-"
        repositories = ", ".join(images.allowed_repositories) or "-"
        print(f"    allowed registries: {registries}; allowed repositories: {repositories}")
    else:
        print("    allowed sources: any (no allowedRegistries or allowedRepositories)")
    pinning = "required (workload.image-digest)" if images.require_digest else "not required"
    print(f"    digest pinning: {pinning}")
    if not images.signatures:
        print("    signatures: none required")
    for index, rule in enumerate(images.signatures):
        signers = [f"key {key.fingerprint}" for key in rule.keys]
        if rule.keyless is not None:
            signers += [f"keyless {identity}" for identity in rule.keyless.identities]
        required = "required" if rule.required else "not enforced (required: false)"
        print(
            f"    signatures[{index}] {', '.join(rule.repositories)}: {required}, "
            f"signed by {'; '.join(signers)}"
        )
    if images.signatures:
        print(f"    registry errors: {images.registry_errors}")
