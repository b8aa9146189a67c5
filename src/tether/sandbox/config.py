"""Settings of the sandbox SMART-on-FHIR data source.

One :class:`SandboxConfig` is built at start-up (by ``tether demo``/``serve`` or by the
``tether sandbox`` command) and passed to :func:`tether.sandbox.create_sandbox_app`;
nothing in the sandbox reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SEED = 20260101
DEFAULT_ACCESS_TOKEN_LIFETIME = 3600  # seconds, SMART App Launch suggests short-lived tokens
DEFAULT_REFRESH_TOKEN_LIFETIME = 90 * 24 * 3600
DEFAULT_CODE_LIFETIME = 120  # RFC 6749 §4.1.2: "a maximum ... of 10 minutes is RECOMMENDED"
DEFAULT_ADMIN_SECRET = "sandbox-admin"
DEFAULT_REDIRECT_URIS = ("http://127.0.0.1:8000/oauth/callback",)

CLINICAL = "CLINICAL"
INSURANCE = "INSURANCE"
LAB = "LAB"
PHARMACY = "PHARMACY"
DEFAULT_BASIC_PASSWORD = "sandbox-password"


@dataclass(frozen=True)
class ClientConfig:
    """An OAuth client registered at every sandbox source (RFC 6749 §2).

    ``client_secret=None`` makes a public client (token endpoint auth method ``none``);
    otherwise the client is confidential and authenticates with ``client_secret_basic``, or,
    at a source with ``asymmetric_client_auth``, with ``private_key_jwt`` verified against the
    keys at ``jwks_uri`` (RFC 7591 client metadata).
    ``redirect_uris=None`` means "the sandbox's ``redirect_uris``".
    """

    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] | None = None
    jwks_uri: str | None = None

    @property
    def is_public(self) -> bool:
        return self.client_secret is None

    def __repr__(self) -> str:  # secrets print masked
        secret = "None" if self.client_secret is None else "'***'"
        return f"ClientConfig(client_id={self.client_id!r}, client_secret={secret})"


@dataclass(frozen=True)
class SourceConfig:
    """One sandbox data source: its slug, display name, directory type and data.

    ``patients`` is how many ordinary synthetic patients it serves; ``large_patient``
    adds one with a long history (at least 20,000 resources); ``volume_resources`` > 0
    adds a benchmark patient whose Observations are generated lazily from their index.
    """

    id: str
    name: str
    type: str
    patients: int = 3
    # When set, the FHIR API also accepts HTTP Basic credentials: the username is a patient id
    # of this source and the password this value (a BASIC source, like a patient portal).
    basic_password: str | None = None
    large_patient: bool = False
    volume_resources: int = 0
    # Confidential clients must authenticate with private_key_jwt (SMART "client-confidential-
    # asymmetric"): assertions verified against the client's jwks_uri, fetched over HTTP.
    asymmetric_client_auth: bool = False
    # A SMART App Launch 1.0 server: no .well-known/smart-configuration (404); the endpoints
    # are only in the CapabilityStatement's oauth-uris extension at {fhir base}/metadata.
    smart_v1: bool = False
    # How real servers bend the standard (tether meets each with a directory profile setting):
    # an Observation search without ``category`` is refused (400 OperationOutcome);
    observation_category_required: bool = False
    # only this media type is answered in Accept (406 for any other);
    accept_only: str | None = None
    # an authorization request carrying ``aud`` is refused (invalid_request);
    reject_aud: bool = False
    # a search with ``_lastUpdated`` is refused (400);
    reject_last_updated: bool = False
    # grants end after this many seconds (``refresh_token_expires_in`` in token responses;
    # refreshing does not extend them);
    grant_lifetime: int | None = None
    # the consent page lets the member untick resource types (a narrower grant than asked).
    choose_types: bool = False


def default_clients(jwks_uri: str | None = None) -> tuple[ClientConfig, ...]:
    """A confidential client ``tether`` (with ``jwks_uri``, its public keys' URL, for the
    sources that want ``private_key_jwt``) and a public client ``tether-public``."""
    return (
        ClientConfig(
            client_id="tether",
            client_secret="sandbox-secret",  # noqa: S106
            jwks_uri=jwks_uri,
        ),
        ClientConfig(client_id="tether-public"),
    )


def default_sources() -> tuple[SourceConfig, ...]:
    """The three sources listed in tether's default directory."""
    return (
        SourceConfig(
            id="sandbox-clinic",
            name="Sandbox Clinic",
            type=CLINICAL,
            large_patient=True,
            volume_resources=1_000_000,
        ),
        SourceConfig(id="sandbox-insurer", name="Sandbox Insurer", type=INSURANCE),
        SourceConfig(id="sandbox-lab", name="Sandbox Lab", type=LAB),
        SourceConfig(
            id="sandbox-pharmacy",
            name="Sandbox Pharmacy",
            type=PHARMACY,
            basic_password=DEFAULT_BASIC_PASSWORD,
        ),
        SourceConfig(
            id="sandbox-specialty",
            name="Sandbox Specialty Care",
            type=CLINICAL,
            patients=2,
            asymmetric_client_auth=True,
        ),
        SourceConfig(
            id="sandbox-legacy",
            name="Sandbox Legacy Hospital",
            type=CLINICAL,
            patients=2,
            smart_v1=True,
        ),
        SourceConfig(
            id="sandbox-regional",
            name="Sandbox Regional Health",
            type=CLINICAL,
            patients=2,
            observation_category_required=True,
            accept_only="application/json+fhir",
            reject_aud=True,
            grant_lifetime=30 * 86400,
            choose_types=True,
        ),
    )


@dataclass
class SandboxConfig:
    """Everything the sandbox needs, built once and passed down.

    ``public_url`` is the absolute URL of the sandbox mount (for example
    ``http://127.0.0.1:8000/sandbox``); the issuer, endpoints and the ``aud`` each
    source accepts derive from it. ``None`` derives it from each request's URL
    (fine for a single host; set it explicitly behind a proxy).
    ``state_path=None`` keeps codes and tokens in memory; a path keeps them in a small
    SQLite file so connections survive a restart of a demo.
    """

    public_url: str | None = None
    redirect_uris: list[str] = field(default_factory=lambda: list(DEFAULT_REDIRECT_URIS))
    clients: tuple[ClientConfig, ...] = field(default_factory=default_clients)
    admin_secret: str = DEFAULT_ADMIN_SECRET
    seed: int = DEFAULT_SEED
    state_path: Path | None = None
    sources: tuple[SourceConfig, ...] = field(default_factory=default_sources)
    access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime: int = DEFAULT_REFRESH_TOKEN_LIFETIME
    code_lifetime: int = DEFAULT_CODE_LIFETIME

    def __repr__(self) -> str:  # secrets print masked
        return (
            f"SandboxConfig(public_url={self.public_url!r}, "
            f"sources={[s.id for s in self.sources]!r}, admin_secret='***', seed={self.seed})"
        )

    def source(self, source_id: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def redirect_uris_of(self, client: ClientConfig) -> tuple[str, ...]:
        if client.redirect_uris is not None:
            return client.redirect_uris
        return tuple(self.redirect_uris)
