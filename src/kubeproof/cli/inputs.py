"""Where a command reads Kubernetes objects from: manifests (PATH..., Helm, Kustomize,
stdin) or a live cluster (--cluster). Every command that judges objects takes the same
input flags, so it sees exactly what `kubeproof scan` sees."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from kubeproof.cli.errors import UsageError
from kubeproof.collector import collector_paused
from kubeproof.inventory import Inventory
from kubeproof.sources import REQUEST_TIMEOUT_S
from kubeproof.sources.documents import InputError
from kubeproof.sources.files import RenderOptions, load_paths


def add_input_arguments(parser: Any) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="YAML/JSON file, directory (recursive), Helm chart, "
        "Kustomize directory, or - for stdin",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="scan the live cluster of the kubeconfig's current context (read-only)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig for --cluster (default $KUBECONFIG, ~/.kube/config, in-cluster)",
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context for --cluster")
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="with --cluster: impersonate USER, to see what that identity can read",
    )
    parser.add_argument(
        "--cluster-name",
        metavar="NAME",
        help="the cluster these objects belong to, as results and the evidence store name it "
        "(default: the kubeconfig's cluster with --cluster, else 'manifests')",
    )
    parser.add_argument(
        "--request-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="with --cluster: give up on an API request after SECONDS "
        f"(default {REQUEST_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--values",
        action="append",
        default=[],
        metavar="FILE",
        help="Helm values file (repeatable)",
    )
    parser.add_argument(
        "--set",
        dest="set_values",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Helm --set value (repeatable)",
    )
    parser.add_argument("--release-name", default="release", help="Helm release name")
    parser.add_argument(
        "--release-namespace", metavar="NAMESPACE", help="namespace passed to helm template"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600: {text!r}")
    return value


def load_source(arguments: argparse.Namespace) -> Source:
    """The objects named by the input flags; raises UsageError for a misuse or a cluster
    that cannot be read at all (partial reads are recorded in the coverage)."""
    # Reading builds millions of small, acyclic objects (about two thirds of the time
    # spent parsing a large cluster's lists went to the cyclic collector).
    with collector_paused():
        source = _from_cluster(arguments) if arguments.cluster else _from_files(arguments)
    name = getattr(arguments, "cluster_name", None)
    if name is not None:
        if not name.strip():
            raise UsageError("--cluster-name must not be empty")
        source.cluster_name = name
    return source


@dataclass
class Source:
    inventory: Inventory
    names: list[str]
    cluster_name: str = "manifests"
    errors: list[InputError] = field(default_factory=list)
    files: int = 0


def _from_files(arguments: argparse.Namespace) -> Source:
    if not arguments.paths:
        raise UsageError("nothing to read: give PATH... or --cluster")
    if arguments.kubeconfig or arguments.context or arguments.as_user:
        raise UsageError("--kubeconfig, --context and --as only apply with --cluster")
    if getattr(arguments, "request_timeout", None) is not None:
        raise UsageError("--request-timeout only applies with --cluster")
    loaded = load_paths(
        arguments.paths,
        RenderOptions(
            values=arguments.values,
            set_values=arguments.set_values,
            release=arguments.release_name,
            namespace=arguments.release_namespace,
        ),
    )
    return Source(
        Inventory(loaded.objects), list(arguments.paths), errors=loaded.errors, files=loaded.files
    )


def _from_cluster(arguments: argparse.Namespace) -> Source:
    if arguments.paths:
        raise UsageError("give either PATH... or --cluster, not both")
    # Imported here: the HTTP and TLS modules are a tenth of the start-up of a file scan.
    from kubeproof.sources.cluster import ClusterError, load_cluster
    from kubeproof.sources.kubeconfig import KubeconfigError, load_connection

    try:
        connection = load_connection(arguments.kubeconfig, arguments.context)
        connection = connection.with_impersonation(arguments.as_user)
        timeout = getattr(arguments, "request_timeout", None) or REQUEST_TIMEOUT_S
        inventory = load_cluster(connection, timeout_s=timeout)
    except (KubeconfigError, ClusterError) as error:
        raise UsageError(str(error)) from None
    name = connection.cluster_name
    return Source(inventory, [f"cluster {name} ({connection.server})"], cluster_name=name)
