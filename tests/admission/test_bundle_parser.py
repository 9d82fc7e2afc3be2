"""The Sigstore bundle parser and verifier offline: key hints, and hypothesis fuzzing of
hostile bundles (arbitrary bytes and JSON, and valid bundles with fields replaced), which
must only ever give a verification problem."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admission.bundling import dsse_bundle, message_bundle, statement
from admission.cosign import PrivateKey, new_key, public_pem
from kubeproof.admission.bundles import (
    BundleProblem,
    Failure,
    keys_for_hint,
    pae,
    parse_bundle,
    verify_bundle,
)
from kubeproof.admission.signatures import load_policy_key

FUZZ_KEY = new_key()


def test_the_key_hint_puts_the_named_policy_key_first() -> None:
    trusted, other = new_key(), new_key()
    keys = (load_policy_key(public_pem(other)), load_policy_key(public_pem(trusted)))
    bundle = parse_bundle(
        json.dumps(dsse_bundle(trusted, statement("sha256:" + "a" * 64))).encode()
    )
    assert keys_for_hint(bundle.key_hint, keys) == (keys[1], keys[0])
    assert keys_for_hint("kms-key-7", keys) == keys


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "mediaType",
        "verificationMaterial",
        "publicKey",
        "hint",
        "certificate",
        "messageSignature",
        "messageDigest",
        "algorithm",
        "digest",
        "signature",
        "dsseEnvelope",
        "payload",
        "payloadType",
        "signatures",
        "sig",
    ]
)


def _mutated(bundle: Any, path: list[str], value: Any) -> Any:
    """`bundle` with the field at `path` (as deep as it goes) replaced by `value`."""
    if not path or not isinstance(bundle, dict):
        return value
    head = next((k for k in bundle if k == path[0]), None)
    if head is None:
        return {**bundle, path[0]: value}
    return {**bundle, head: _mutated(bundle[head], path[1:], value)}


def _judge(data: bytes, key: PrivateKey) -> None:
    keys = (load_policy_key(public_pem(key)),)
    try:
        verify_bundle(parse_bundle(data), "sha256:" + "c" * 64, keys, lambda: b"{}")
    except BundleProblem as problem:
        assert isinstance(problem.failure, Failure) and str(problem)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400) | JSON.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_give_a_verification_problem_never_a_crash(data: bytes) -> None:
    _judge(data, FUZZ_KEY)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    content=st.sampled_from(["dsse", "message"]),
    path=st.lists(FIELDS, min_size=1, max_size=4),
    value=JSON,
)
def test_a_mutated_bundle_gives_a_verification_problem_never_a_crash(
    content: str, path: list[str], value: Any
) -> None:
    digest = "sha256:" + "c" * 64
    bundle = (
        dsse_bundle(FUZZ_KEY, statement(digest))
        if content == "dsse"
        else message_bundle(FUZZ_KEY, b"{}")
    )
    _judge(json.dumps(_mutated(bundle, path, value)).encode(), FUZZ_KEY)


def test_pae_matches_the_dsse_spec_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_one_trusted_signature_among_several_verifies_the_envelope() -> None:
    digest = "sha256:" + "d" * 64
    bundle = dsse_bundle(FUZZ_KEY, statement(digest))
    stranger = dsse_bundle(new_key(), statement(digest))["dsseEnvelope"]["signatures"]
    bundle["dsseEnvelope"]["signatures"] = stranger + bundle["dsseEnvelope"]["signatures"]
    keys = (load_policy_key(public_pem(FUZZ_KEY)),)
    parsed = parse_bundle(json.dumps(bundle).encode())
    assert verify_bundle(parsed, digest, keys, lambda: b"") is keys[0]
