"""Hostile input to the keyless parsers: the trusted root file, Fulcio's certificate
extensions, a keyless bundle's log entries, and inclusion proofs. Each may only answer
with its own problem (TrustedRootProblem, BundleProblem, None), never another exception;
and the Merkle proof check agrees with RFC 6962's recursive construction."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admission.keyless_signing import (
    EPOCH,
    GITHUB,
    ISSUER_V1,
    ISSUER_V2,
    SCT_LIST,
    WORKFLOW,
    Fulcio,
    Rekor,
    audit_path,
    keyless_dsse_bundle,
    signing,
    tree_hash,
    trusted_root,
    utf8_string,
)
from kubeproof.admission.bundles import BundleProblem, parse_bundle
from kubeproof.admission.keyless import (
    der_utf8_string,
    fulcio_issuer,
    leaf_hash,
    merkle_root_from_proof,
    sct_problem,
    verify_keyless,
)
from kubeproof.admission.trustroot import (
    Identity,
    KeylessTrust,
    TrustedRoot,
    TrustedRootProblem,
    parse_trusted_root,
)

FULCIO, REKOR = Fulcio(), Rekor()
ROOT = trusted_root(FULCIO, REKOR)
DIGEST = "sha256:" + "5e" * 32
BUNDLE = keyless_dsse_bundle(REKOR, signing(FULCIO), DIGEST)
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parsed_or_problem(data: bytes) -> None:
    try:
        assert isinstance(parse_trusted_root(data), TrustedRoot)
    except TrustedRootProblem as problem:
        assert str(problem)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*at, index))
    return found


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    changed = copy.deepcopy(document)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def test_the_unchanged_inputs_verify() -> None:
    """The fuzzed inputs start from ones that pass, so a change is what fails."""
    root = parse_trusted_root(json.dumps(ROOT).encode())
    assert len(root.authorities[0].chain) == 2 and root.log(REKOR.key_id) is not None
    signer = verify_keyless(parse_bundle(json.dumps(BUNDLE).encode()), DIGEST, TRUST, bytes)
    assert signer == f"keyless {WORKFLOW} from {GITHUB}"


@FUZZ
@given(st.binary(max_size=300))
def test_trusted_root_bytes(data: bytes) -> None:
    _parsed_or_problem(data)


@FUZZ
@given(json_values)
def test_trusted_root_json(value: Any) -> None:
    _parsed_or_problem(json.dumps(value).encode())


@FUZZ
@given(st.data(), json_values)
def test_trusted_root_with_one_field_changed(data: st.DataObject, value: Any) -> None:
    path = data.draw(st.sampled_from(_paths(ROOT)))
    _parsed_or_problem(json.dumps(_replaced(ROOT, path, value)).encode())


@FUZZ
@given(st.text(max_size=300))
def test_der_utf8_strings_round_trip(text: str) -> None:
    assert der_utf8_string(utf8_string(text)) == text


@FUZZ
@given(st.binary(max_size=200))
def test_der_utf8_string_never_raises(data: bytes) -> None:
    found = der_utf8_string(data)
    assert found is None or utf8_string(found) == data


def _certificate(oid: x509.ObjectIdentifier, raw: bytes) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(FULCIO.intermediate.subject)
        .public_key(LEAF_KEY.public_key())
        .serial_number(1)
        .not_valid_before(EPOCH)
        .not_valid_after(EPOCH + timedelta(minutes=10))
        .add_extension(x509.UnrecognizedExtension(oid, raw), critical=False)
        .sign(FULCIO.key, hashes.SHA256())
    )


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([ISSUER_V1, ISSUER_V2]), st.binary(max_size=80))
def test_fulcio_issuer_extension_bytes(oid: x509.ObjectIdentifier, raw: bytes) -> None:
    found = fulcio_issuer(_certificate(oid, raw))
    if oid == ISSUER_V2:
        assert found == der_utf8_string(raw)
    else:
        assert found is None or found.encode() == raw


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=120))
def test_signed_certificate_timestamp_extension_bytes(raw: bytes) -> None:
    """Arbitrary bytes as the SCT list (inside its OCTET STRING, or not) are a problem."""
    for value in (raw, b"\x04" + bytes([len(raw)]) + raw if len(raw) < 0x80 else raw):
        certificate = _certificate(SCT_LIST, value)
        logs = TRUST.root.ct_logs
        assert logs and sct_problem(certificate, FULCIO.intermediate, logs) is not None


TRUST = KeylessTrust(
    parse_trusted_root(json.dumps(ROOT).encode()),
    (Identity(GITHUB, subject=WORKFLOW),),
)


@FUZZ
@given(st.data(), json_values)
def test_a_keyless_bundle_with_one_field_changed(data: st.DataObject, value: Any) -> None:
    """Only a bundle problem, never another exception, whatever one field becomes."""
    path = data.draw(st.sampled_from(_paths(BUNDLE)))
    try:
        bundle = parse_bundle(json.dumps(_replaced(BUNDLE, path, value)).encode())
        verify_keyless(bundle, DIGEST, TRUST, lambda: b"{}")
    except BundleProblem as problem:
        assert str(problem)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_inclusion_proofs_agree_with_rfc_6962(size: int, data: st.DataObject) -> None:
    leaves = [b"leaf %d" % i for i in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = tuple(audit_path(index, leaves))
    root = tree_hash(leaves)
    assert merkle_root_from_proof(index, size, leaf_hash(leaves[index]), path) == root
    other = data.draw(st.integers(min_value=0, max_value=size - 1))
    if other != index and path:
        assert merkle_root_from_proof(other, size, leaf_hash(leaves[index]), path) != root


@FUZZ
@given(
    st.integers(min_value=-3, max_value=2**64),
    st.integers(min_value=-3, max_value=2**64),
    st.lists(st.binary(min_size=0, max_size=40), max_size=70),
)
def test_inclusion_proof_garbage(index: int, size: int, path: list[bytes]) -> None:
    found = merkle_root_from_proof(index, size, b"\0" * 32, tuple(path))
    assert found is None or len(found) == 32
