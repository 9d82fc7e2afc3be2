"""Prometheus text exposition (format 0.0.4): counter and gauge families and histograms,
written by hand because the few lines kubeproof needs do not justify a dependency."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Labels = Mapping[str, str]


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def sample(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    text = ",".join(f'{key}="{escape(str(item))}"' for key, item in labels.items())
    return f"{name}{{{text}}} {_number(value)}"


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]
) -> list[str]:
    """`# HELP`, `# TYPE` and one line per sample; kind is counter or gauge."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines.extend(sample(name, labels, value) for labels, value in samples)
    return lines


def histogram(
    name: str,
    help_text: str,
    bounds: Sequence[float],
    bucket_counts: Sequence[int],
    total: float,
    count: int,
) -> list[str]:
    """`bucket_counts` holds one count per bound and a last one for +Inf (not cumulative)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    cumulative = 0
    for bound, bucket in zip((*bounds, None), bucket_counts, strict=True):
        cumulative += bucket
        le = "+Inf" if bound is None else repr(bound)
        lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
    lines.append(f"{name}_sum {total!r}")
    lines.append(f"{name}_count {count}")
    return lines


def _number(value: float) -> str:
    # Counters are whole numbers: print them without a decimal point.
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return repr(value)
