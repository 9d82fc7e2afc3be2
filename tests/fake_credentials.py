"""Realistic but fake credentials for tests.

Each is assembled at run time from pieces, so this file never contains a string that a
secret scanner (ours, or a code host's push protection) would recognise.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from kubeproof.redaction import CredentialKind


@dataclass(frozen=True)
class FakeCredential:
    kind: CredentialKind
    text: str  # what appears in a manifest
    secret: str  # the part that must never appear in any output
    named: bool = False  # recognised only under a secret-sounding name

    @property
    def secrets(self) -> list[str]:
        """The secret, and its base64 form (how a Secret's data would carry it)."""
        return [self.secret, base64.b64encode(self.secret.encode()).decode()]


def _join(*parts: str) -> str:
    return "".join(parts)


_PEM_BODY = _join(
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "BKcwggSjAgEAAoIBAQC7Vd3hQm9Kx2Lp",
    "\nZ4rT8uWq1YsN6cE0bJfA3gHkDiMlOnPoQrStUvWxYz2468ACEGIKMOQSUWY0",
    "\nq9Fw2Ex7Rc5Tv8Ub3Ny6Mz1Ka4Lj7Hg0Df9Se2Wr5Qt8Pu1Oi4Nm7Lk0Jh3",
)
PRIVATE_KEY = _join(
    "-----BEGIN ",
    "RSA PRIVATE",
    " KEY-----\n",
    _PEM_BODY,
    "\n-----END ",
    "RSA PRIVATE",
    " KEY-----\n",
)

_GCP_BODY = _join("MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDf", "Q3wE9rT2yU7iO1pA5sD")
GCP_KEY_FILE = json.dumps(
    {
        "type": "service_account",
        "project_id": "shop-prod",
        "private_key_id": _join("8c1f", "0e5a9b7d3c2f1e4a6b8d0c9e7f5a3b1d2c4e6f80"),
        "private_key": _join(
            "-----BEGIN ",
            "PRIVATE",
            " KEY-----\n",
            _GCP_BODY,
            "\n-----END ",
            "PRIVATE",
            " KEY-----\n",
        ),
        "client_email": "shop@shop-prod.iam.gserviceaccount.com",
    },
    indent=2,
)

_AZURE_KEY = _join(
    "Zm9vYmFyYmF6cXV4",
    "K3NlY3JldC9rZXkvZm9yL3Rlc3RzL29ubHkvbm90L3JlYWwv",
    "MTIzNDU2Nzg5MEFCQ0RFRg==",
)

FAKES: dict[str, FakeCredential] = {
    "aws-key-id": FakeCredential(
        CredentialKind.AWS_ACCESS_KEY_ID,
        _join("AK", "IA", "Q7XK2M9PL4RT8WZ3"),
        _join("AK", "IA", "Q7XK2M9PL4RT8WZ3"),
    ),
    "aws-secret": FakeCredential(
        CredentialKind.AWS_SECRET_ACCESS_KEY,
        _join("k9Xq2Lm7Vb4Nc8Zr1Tw6", "Yp3Hs5Jd0Gf/EaUo+Ri2"),
        _join("k9Xq2Lm7Vb4Nc8Zr1Tw6", "Yp3Hs5Jd0Gf/EaUo+Ri2"),
        named=True,
    ),
    "github": FakeCredential(
        CredentialKind.GITHUB_TOKEN,
        _join("gh", "p_", "Rk3Lw9Xz2Qp7Tn5Vb8Mc1Jd4Hf6Gs0Ya2Ue3"),
        _join("gh", "p_", "Rk3Lw9Xz2Qp7Tn5Vb8Mc1Jd4Hf6Gs0Ya2Ue3"),
    ),
    "gitlab": FakeCredential(
        CredentialKind.GITLAB_TOKEN,
        _join("gl", "pat-", "Hy7Tq2Wn9Kx4Lm3Pz8Rv"),
        _join("gl", "pat-", "Hy7Tq2Wn9Kx4Lm3Pz8Rv"),
    ),
    "slack": FakeCredential(
        CredentialKind.SLACK_TOKEN,
        _join("xo", "xb-", "4820193756-7391028465-Qw3Er5Ty7Ui9Op1As3Df5Gh"),
        _join("xo", "xb-", "4820193756-7391028465-Qw3Er5Ty7Ui9Op1As3Df5Gh"),
    ),
    "stripe": FakeCredential(
        CredentialKind.STRIPE_KEY,
        _join("sk", "_live_", "51Hq8Zt2Xw4Vn6Bm9Lk3Jp7R"),
        _join("sk", "_live_", "51Hq8Zt2Xw4Vn6Bm9Lk3Jp7R"),
    ),
    "jwt": FakeCredential(
        CredentialKind.JWT,
        _join(
            "ey",
            "JhbGciOiJIUzI1NiJ9.",
            "ey",
            "JzdWIiOiJzaG9wLWFwaSJ9.",
            "Xq4Tz8Wn2Lm6Pk9Rv3Hs7Jd1Gf5Ya0Ue",
        ),
        _join(
            "ey",
            "JhbGciOiJIUzI1NiJ9.",
            "ey",
            "JzdWIiOiJzaG9wLWFwaSJ9.",
            "Xq4Tz8Wn2Lm6Pk9Rv3Hs7Jd1Gf5Ya0Ue",
        ),
    ),
    "private-key": FakeCredential(CredentialKind.PRIVATE_KEY, PRIVATE_KEY, _PEM_BODY),
    "gcp": FakeCredential(CredentialKind.GCP_SERVICE_ACCOUNT_KEY, GCP_KEY_FILE, _GCP_BODY),
    "azure": FakeCredential(
        CredentialKind.AZURE_ACCOUNT_KEY,
        _join(
            "DefaultEndpointsProtocol=https;AccountName=shopstore;",
            "Account",
            "Key=",
            _AZURE_KEY,
            ";EndpointSuffix=core.windows.net",
        ),
        _AZURE_KEY,
    ),
    "url-password": FakeCredential(
        CredentialKind.URL_PASSWORD,
        _join("postgres://shop:", "Vq8#mZ2!rLx5", "@db.shop:5432/shop"),
        "Vq8#mZ2!rLx5",
    ),
    "password": FakeCredential(
        CredentialKind.PASSWORD, "plum-Orchid-42-Tundra", "plum-Orchid-42-Tundra", named=True
    ),
}
