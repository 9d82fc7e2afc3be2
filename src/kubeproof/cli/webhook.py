"""`kubeproof webhook serve` and `kubeproof webhook manifests`: the admission webhook."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from types import FrameType
from typing import Any

from kubeproof.admission.decide import Decider, NamespaceLabelCache
from kubeproof.admission.manifests import DEFAULT_IMAGE, DEFAULT_POLICY, ManifestOptions, render
from kubeproof.admission.policy import Policy, PolicyError, load_policy
from kubeproof.admission.server import AdmissionServer, CertificateReloader, TlsError
from kubeproof.cli.errors import EXIT_CLEAN, UsageError


def register(commands: Any) -> None:
    webhook = commands.add_parser("webhook", help="validating admission webhook (SOC 2 CC6.8)")
    actions = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)

    serve = actions.add_parser("serve", help="serve AdmissionReview over HTTPS")
    serve.add_argument("--policy", required=True, metavar="FILE", help="admission policy YAML")
    serve.add_argument("--tls-cert", required=True, metavar="FILE", help="serving certificate")
    serve.add_argument("--tls-key", required=True, metavar="FILE", help="serving private key")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=8443, help="port (0: any free port)")
    serve.add_argument(
        "--namespace-labels",
        action="store_true",
        help="look up namespace labels in the cluster (for policy label selectors and "
        "pod-security.kubernetes.io labels); uses --kubeconfig, $KUBECONFIG or in-cluster",
    )
    serve.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for --namespace-labels")
    serve.add_argument("--context", metavar="NAME", help="kubeconfig context")
    serve.set_defaults(run=run_serve)

    manifests = actions.add_parser("manifests", help="print manifests to deploy the webhook")
    manifests.add_argument("--namespace", default="kubeproof", help="namespace to run in")
    manifests.add_argument("--image", default=DEFAULT_IMAGE, help="kubeproof image")
    manifests.add_argument("--ca-bundle", metavar="FILE", help="PEM CA that signed the cert")
    manifests.add_argument("--policy", metavar="FILE", help="policy to ship (validated)")
    manifests.add_argument(
        "--failure-policy", choices=("Fail", "Ignore"), default="Fail", help="when unreachable"
    )
    manifests.set_defaults(run=run_manifests)

    check = actions.add_parser("check-policy", help="validate a policy file and show it")
    check.add_argument("policy", metavar="FILE")
    check.set_defaults(run=run_check_policy)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
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
    try:
        server = AdmissionServer(
            (arguments.host, arguments.port), Decider(policy, labels), certificates
        )
    except OSError as error:
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
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_CLEAN


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
            with open(arguments.ca_bundle, "rb") as handle:
                ca_bundle = handle.read()
        except OSError as error:
            raise UsageError(f"--ca-bundle {arguments.ca_bundle}: {error.strerror}") from None
        if b"-----BEGIN CERTIFICATE-----" not in ca_bundle:
            raise UsageError(f"--ca-bundle {arguments.ca_bundle}: not a PEM certificate")
    policy_text = DEFAULT_POLICY
    if arguments.policy:
        _policy(arguments.policy)
        with open(arguments.policy, encoding="utf-8") as handle:
            policy_text = handle.read()
    options = ManifestOptions(
        namespace=arguments.namespace,
        image=arguments.image,
        ca_bundle=ca_bundle,
        policy_text=policy_text,
        failure_policy=arguments.failure_policy,
    )
    sys.stdout.write(render(options))
    if ca_bundle is None:
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
    if policy.left_to_scan:
        print(
            f"  left to scan (need more than the admitted object): {', '.join(policy.left_to_scan)}"
        )
    for rule in policy.namespaces:
        print(f"  namespaces {list(rule.names) or '*'} selector {rule.selector}: {rule.mode}")
    return EXIT_CLEAN
