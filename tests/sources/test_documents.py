"""The YAML/JSON document splitter and parser, including hostile input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.sources import pyyaml_loader
from kubeproof.sources.documents import Document, InputError, parse_documents
from paths import ROOT


def parse(text: str) -> list[Document | InputError]:
    return list(parse_documents(text, "input.yaml"))


def test_documents_keep_their_first_content_line() -> None:
    text = "# header\n---\na: 1\n---\n\n# comment\nb: 2\n...\n---\nc: 3\n"
    parsed = parse(text)
    assert [(d.data, d.line) for d in parsed if isinstance(d, Document)] == [
        ({"a": 1}, 3),
        ({"b": 2}, 7),
        ({"c": 3}, 10),
    ]


def test_markers_inside_block_scalars_are_not_split() -> None:
    text = "a: |\n  ---\n  text\nb: 1\n"
    (document,) = parse(text)
    assert isinstance(document, Document)
    assert document.data == {"a": "---\ntext\n", "b": 1}


def test_timestamps_stay_strings_as_in_kubernetes() -> None:
    (document,) = parse("created: 2024-01-01\nwhen: 2001-12-14t21:59:43.10-05:00\n")
    assert isinstance(document, Document)
    assert document.data == {"created": "2024-01-01", "when": "2001-12-14t21:59:43.10-05:00"}


def test_yaml_1_1_scalars_match_kubernetes() -> None:
    (document,) = parse("a: yes\nb: 0777\nc: ~\nd: '1'\n")
    assert isinstance(document, Document)
    assert document.data == {"a": True, "b": 511, "c": None, "d": "1"}


def test_invalid_yaml_names_the_line() -> None:
    parsed = parse("a: 1\n---\nb: [1, 2\nc: 3\n")
    assert isinstance(parsed[0], Document)
    error = parsed[1]
    assert isinstance(error, InputError)
    assert error.source == "input.yaml"
    assert error.line is not None and error.line >= 3
    assert "invalid YAML" in error.message


def test_alias_bomb_is_refused_without_expanding() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    (error,) = parse("\n".join(lines) + "\n")
    assert isinstance(error, InputError)
    assert "alias" in error.message


def test_a_long_string_repeated_by_aliases_is_refused() -> None:
    # 3,000 nodes, but 3,000 copies of 800 KiB once written out (2.4 GB).
    text = "a: [&a " + "x" * (800 << 10) + ", " + ", ".join(["*a"] * 3000) + "]\n"
    (error,) = parse(text)
    assert isinstance(error, InputError)
    assert "alias" in error.message
    (fine,) = parse("a: [&a " + "x" * (800 << 10) + ", *a, *a]\n")
    assert isinstance(fine, Document)


def test_self_referencing_document_is_refused() -> None:
    (error,) = parse("&a [*a]\n")
    assert isinstance(error, InputError)


def test_deep_nesting_is_refused_before_the_c_parser_recurses() -> None:
    (error,) = parse("[" * 200_000 + "]" * 200_000)
    assert isinstance(error, InputError)
    assert "nest" in error.message


def test_moderate_nesting_is_fine() -> None:
    (document,) = parse("a: " + "[" * 100 + "]" * 100 + "\n")
    assert isinstance(document, Document)


def test_json_fast_path_and_its_line() -> None:
    (document,) = parse('\n\n{"kind": "Pod", "apiVersion": "v1"}')
    assert isinstance(document, Document)
    assert document.line == 3
    assert document.data["kind"] == "Pod"


def test_deep_json_falls_back_and_is_refused() -> None:
    (error,) = parse("[" * 100_000 + "]" * 100_000)
    assert isinstance(error, InputError)


def test_oversized_document_is_refused(monkeypatch: object) -> None:
    import kubeproof.sources.documents as documents

    setattr(documents, "MAX_DOCUMENT_BYTES", 1000)  # noqa: B010
    try:
        (error,) = parse("a: " + "x" * 2000 + "\n")
    finally:
        setattr(documents, "MAX_DOCUMENT_BYTES", 8 * 1024 * 1024)  # noqa: B010
    assert isinstance(error, InputError)
    assert "larger" in error.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    for item in parse_documents(text, "fuzz.yaml"):
        assert isinstance(item, Document | InputError)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(yaml_values, min_size=1, max_size=4))
def test_round_trips_generated_documents(values: list[object]) -> None:
    text = yaml.safe_dump_all(values, explicit_start=True)
    parsed = [d for d in parse(text)]
    assert all(isinstance(d, Document) for d in parsed), parsed
    assert [d.data for d in parsed if isinstance(d, Document)] == [
        v for v in values if v is not None
    ] or len(parsed) == len(values)


def test_go_yaml_scalar_rules_on_both_parsers() -> None:
    text = "a: y\nb: 0644\nc: 0o17\nd: 1e3\ne: 12:30\nf: 2024-01-01\ng: off\nh: 0x1F\n"
    expected = {
        "a": True,
        "b": 420,
        "c": 15,
        "d": 1000.0,
        "e": "12:30",
        "f": "2024-01-01",
        "g": False,
        "h": 31,
    }
    (fast,) = parse(text)
    assert isinstance(fast, Document) and fast.data == expected
    assert pyyaml_loader.load(text) == expected


def test_documents_with_aliases_take_the_bomb_proof_path() -> None:
    (document,) = parse("base: &b {cpu: 1}\nmerged:\n  <<: *b\n  memory: 2\n")
    assert isinstance(document, Document)
    assert document.data == {"base": {"cpu": 1}, "merged": {"cpu": 1, "memory": 2}}


def test_duplicate_keys_are_an_error() -> None:
    (error,) = parse("a: 1\nb: 2\na: 3\n")
    assert isinstance(error, InputError)


def test_fast_parser_matches_pyyaml_on_generated_manifests(tmp_path: Path) -> None:
    """The fast parser is only trusted because it agrees with the reference, document for
    document, on realistic manifests (file modes in octal included)."""
    generator = ROOT / "bench" / "generate_manifests.py"
    subprocess.run(
        [sys.executable, str(generator), "--resources", "400", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    compared = 0
    for path in sorted(tmp_path.rglob("*.yaml")):
        text = path.read_text()
        fast = [d.data for d in parse_documents(text, str(path)) if isinstance(d, Document)]
        reference = [d for d in yaml.load_all(text, Loader=pyyaml_loader.KubernetesLoader) if d]
        assert fast == reference, path
        compared += len(fast)
    assert compared > 250


def test_anchored_null_beside_a_star_is_a_document_not_a_crash() -> None:
    (document,) = parse("&x ~ # *y\n")
    assert isinstance(document, Document) and document.data is None


MARKERS = ("---\n", "--- \n", "---\t# c\n", "...\n---\n", "---\r\n")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(MARKERS),
            st.integers(min_value=0, max_value=2),
            st.dictionaries(
                st.from_regex(r"k[a-z]{0,7}", fullmatch=True),  # never `y`, a YAML 1.1 boolean
                st.integers(-(2**31), 2**31) | st.text(alphabet="ab -.#:\n", max_size=12),
                min_size=1,
                max_size=3,
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_each_document_keeps_its_data_and_first_content_line(
    documents: list[tuple[str, int, dict[str, object]]], leading_marker: bool
) -> None:
    text, expected = "", []
    for position, (marker, comments, value) in enumerate(documents):
        if position or leading_marker:
            text += marker
        text += "# comment\n\n" * comments
        expected.append((value, text.count("\n") + 1))
        text += yaml.safe_dump(value)
    parsed = parse(text)
    assert [(d.data, d.line) for d in parsed if isinstance(d, Document)] == expected, text


def test_fast_parser_loads_without_its_package_and_is_shared_with_it() -> None:
    """Only pyrs-yaml's compiled module is loaded (its package imports asyncio and date
    libraries at every start); importing the package later reuses that module."""
    program = (
        "import sys\n"
        "from kubeproof.sources import documents\n"
        "assert documents.fast_yaml is not None\n"
        "assert 'pyrs_yaml' not in sys.modules and 'asyncio' not in sys.modules, "
        "sorted(m for m in sys.modules if 'pyrs' in m or 'asyncio' in m)\n"
        "assert documents.fast_yaml.safe_load('a: 0644', 'yaml1.1') == {'a': 420}\n"
        "import pyrs_yaml\n"
        "assert sys.modules['pyrs_yaml.pyrs_yaml'] is documents.fast_yaml\n"
        "assert pyrs_yaml.safe_load('b: on', schema='yaml1.1') == {'b': True}\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, capture_output=True)
