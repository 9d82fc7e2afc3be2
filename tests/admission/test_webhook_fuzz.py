"""Generated pod specs, well and badly typed, posted to a running server: every one gets
an AdmissionReview answer for its own uid, and the server never falls over."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admission.reviews import GROUPS, review, workload

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
ANY_JSON = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right type most of the time, anything JSON now and then."""
    return st.one_of(strategy, strategy, strategy, ANY_JSON)


SECURITY_CONTEXT = st.fixed_dictionaries(
    {},
    optional={
        "privileged": maybe(st.booleans()),
        "runAsNonRoot": maybe(st.booleans()),
        "runAsUser": maybe(st.integers(-1, 70000)),
        "allowPrivilegeEscalation": maybe(st.booleans()),
        "readOnlyRootFilesystem": maybe(st.booleans()),
        "capabilities": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "add": maybe(st.lists(st.sampled_from(["NET_ADMIN", "SYS_ADMIN", "ALL"]))),
                    "drop": maybe(st.lists(st.sampled_from(["ALL", "NET_RAW"]))),
                },
            )
        ),
        "seccompProfile": maybe(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["RuntimeDefault", "Unconfined", "Localhost"])}
            )
        ),
        "procMount": maybe(st.sampled_from(["Default", "Unmasked"])),
    },
)
CONTAINER = st.fixed_dictionaries(
    {"name": maybe(st.text(min_size=1, max_size=10))},
    optional={
        "image": maybe(
            st.sampled_from(["nginx", "registry.example.com/a:1", "a@sha256:" + "0" * 64, ""])
            | st.text(max_size=30)
        ),
        "securityContext": maybe(SECURITY_CONTEXT),
        "ports": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"containerPort": maybe(st.integers(0, 70000))},
                    optional={"hostPort": maybe(st.integers(0, 70000))},
                ),
                max_size=2,
            )
        ),
        "env": maybe(
            st.lists(
                st.fixed_dictionaries({"name": st.text(max_size=8), "value": st.text(max_size=8)}),
                max_size=2,
            )
        ),
    },
)
POD_SPEC = st.fixed_dictionaries(
    {"containers": maybe(st.lists(CONTAINER, max_size=3))},
    optional={
        "initContainers": maybe(st.lists(CONTAINER, max_size=2)),
        "hostNetwork": maybe(st.booleans()),
        "hostPID": maybe(st.booleans()),
        "securityContext": maybe(SECURITY_CONTEXT),
        "volumes": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.text(max_size=5)},
                    optional={
                        "hostPath": maybe(st.fixed_dictionaries({"path": st.text(max_size=10)}))
                    },
                ),
                max_size=2,
            )
        ),
        "serviceAccountName": maybe(st.text(max_size=10)),
    },
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(sorted(GROUPS)),
    spec=POD_SPEC,
    namespace=st.sampled_from(["team-a", "dev-x", "", "kube-system"]),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE"]),
)
def test_every_generated_review_gets_an_answer(
    connection: http.client.HTTPSConnection,
    kind: str,
    spec: dict[str, Any],
    namespace: str,
    operation: str,
) -> None:
    uid = str(uuid.uuid4())
    body = review(workload(kind, "fuzz", spec, namespace), operation=operation, uid=uid)
    connection.request("POST", "/validate", body=json.dumps(body).encode())
    response = connection.getresponse()
    raw = response.read()
    assert response.status == 200, raw[:200]
    answer = json.loads(raw)["response"]
    assert answer["uid"] == uid
    assert isinstance(answer["allowed"], bool)
    if not answer["allowed"]:
        assert answer["status"]["code"] in (400, 403) and answer["status"]["message"]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=ANY_JSON)
def test_arbitrary_json_gets_400_or_an_answer(
    connection: http.client.HTTPSConnection, document: Any
) -> None:
    connection.request("POST", "/validate", body=json.dumps(document).encode())
    response = connection.getresponse()
    response.read()
    assert response.status in (200, 400)
