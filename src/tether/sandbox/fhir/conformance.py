"""Discovery documents: SMART App Launch 2.x ``.well-known/smart-configuration`` and the
FHIR R4 CapabilityStatement with the SMART ``oauth-uris`` extension."""

from __future__ import annotations

from typing import Any

from tether.sandbox.scopes import SCOPES_SUPPORTED

RESOURCE_TYPES = (
    "AllergyIntolerance",
    "Condition",
    "Coverage",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "ExplanationOfBenefit",
    "Immunization",
    "MedicationRequest",
    "Observation",
    "Patient",
    "Practitioner",
    "Procedure",
)
SEARCH_PARAMS = {"patient": "reference", "_count": "number", "_lastUpdated": "date"}
CAPABILITIES = [
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
]


def smart_configuration(issuer: str, *, asymmetric: bool = False) -> dict[str, Any]:
    """SMART App Launch 2.x §"Conformance": the authorization server's metadata; with
    ``asymmetric`` confidential clients must use ``private_key_jwt``."""
    if asymmetric:
        capabilities = [c for c in CAPABILITIES if c != "client-confidential-symmetric"]
        capabilities.append("client-confidential-asymmetric")
        return {
            **smart_configuration(issuer),
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "capabilities": capabilities,
        }
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "scopes_supported": SCOPES_SUPPORTED,
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


def capability_statement(issuer: str, name: str) -> dict[str, Any]:
    """FHIR R4 CapabilityStatement; security advertises SMART's OAuth URIs."""
    oauth_uris = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [
            {"url": "authorize", "valueUri": f"{issuer}/oauth/authorize"},
            {"url": "token", "valueUri": f"{issuer}/oauth/token"},
            {"url": "revoke", "valueUri": f"{issuer}/oauth/revoke"},
            {"url": "introspect", "valueUri": f"{issuer}/oauth/introspect"},
        ],
    }
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": f"tether sandbox: {name}"},
        "implementation": {"description": name, "url": f"{issuer}/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [oauth_uris],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
                "resource": [
                    {
                        "type": t,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": name, "type": kind} for name, kind in SEARCH_PARAMS.items()
                        ]
                        + ([{"name": "category", "type": "token"}] if t == "Observation" else []),
                    }
                    for t in RESOURCE_TYPES
                ],
            }
        ],
    }
