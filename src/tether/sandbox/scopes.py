"""SMART App Launch 2.x scopes (§ "Scopes and Launch Context").

The sandbox grants what is asked as long as every scope is one it understands:
``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``, ``online_access`` and
patient-level resource scopes in v1 (``patient/Observation.read``) or v2
(``patient/Observation.rs``) syntax.
"""

from __future__ import annotations

import re

FIXED_SCOPES = ("openid", "fhirUser", "launch/patient", "offline_access", "online_access")
RESOURCE_SCOPE = re.compile(r"^patient/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(\?[^\s]*)?$")
SCOPES_SUPPORTED = [
    *FIXED_SCOPES,
    "patient/*.read",
    "patient/*.rs",
]


def is_known(scope: str) -> bool:
    return scope in FIXED_SCOPES or bool(RESOURCE_SCOPE.match(scope))


def allowed_scope(scope: str | None) -> str | None:
    """The scope to grant, or ``None`` (→ ``invalid_scope``) for a missing/unknown one."""
    if not scope:
        return None
    scopes = scope.split()
    if not all(is_known(s) for s in scopes):
        return None
    return " ".join(dict.fromkeys(scopes))


def has_offline_access(scope: str | None) -> bool:
    """Refresh tokens are issued only for ``offline_access`` (SMART App Launch 2.x)."""
    return bool(scope) and "offline_access" in (scope or "").split()


def narrow(scope: str, shared: list[str], offered: tuple[str, ...]) -> str | None:
    """``scope`` with its resource scopes replaced by read access to the ``shared`` types
    only (the member unticked the others on the consent page); None when all ``offered``
    types stay shared (the grant is what was asked)."""
    if set(offered) <= set(shared):
        return None
    items = scope.split()
    v2 = any(RESOURCE_SCOPE.match(s) and not s.endswith((".read", ".*")) for s in items)
    kept = [s for s in items if not RESOURCE_SCOPE.match(s)]
    kept += [f"patient/{t}.{'rs' if v2 else 'read'}" for t in offered if t in shared]
    return " ".join(kept)
