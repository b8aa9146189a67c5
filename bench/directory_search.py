"""searchDataSources at 50,000 sources: import rate, then latency per query kind and over HTTP.

    python -m bench directory_search [--sources N] [--samples N] [--http-requests N]
                                     [--engine sqlite|postgresql] [--seed N]

Generates a seeded synthetic directory (hospitals, practices, practitioners, labs, pharmacies,
insurers in real US ZIP codes), imports it with ``tether.directory.files.import_file``, then runs
a seeded, shuffled mix of searches through ``search_data_sources`` in ``runtime.db.read()``
sessions. The baseline, interleaved with the searches, is ``get_data_source`` by id through the
same session path; the HTTP baseline is ``GET /healthz`` on the same server. Target: search p95
under 20 ms (issue: "search p95 at 50,000 sources").
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import zipcodes
from sqlalchemy import text

from bench._support import (
    Stopwatch,
    Summary,
    available_engines,
    bench_runtime,
    machine,
    quiet_logging,
    server_version,
    table,
    write_results,
)
from tether.accounts import tenants
from tether.connections.retirement import import_directory
from tether.directory import service as directory
from tether.domain import SourceType
from tether.identity import api_keys
from tether.runtime import Runtime

TARGET_P95_MS = 20.0
DEFAULT_SOURCES = 50_000
DEFAULT_SAMPLES = 200  # measured searches per query kind (and baseline reads)
DEFAULT_WARMUP = 15  # per kind, not recorded
DEFAULT_HTTP_REQUESTS = 300
PAGE = 20
RADIUS = 25.0

# ---------------------------------------------------------------------------- word lists
SAINTS = [
    "Mary", "Joseph", "Luke", "John", "Francis", "Vincent", "Elizabeth", "Anthony", "Jude",
    "Catherine", "Michael", "Peter", "Paul", "Agnes", "Clare", "Ann", "Rose", "Patrick",
    "Thomas", "Margaret", "Alexius", "Bernard", "Cloud", "Dominic", "Helena", "James",
]  # fmt: skip
FAITHS = [
    "Mercy", "Providence", "Good Samaritan", "Holy Cross", "Sacred Heart", "Trinity", "Baptist",
    "Methodist", "Presbyterian", "Lutheran", "Adventist", "Covenant", "Bethesda", "Grace",
]  # fmt: skip
HOSPITALS = [
    "Regional Medical Center", "Medical Center", "Memorial Hospital", "General Hospital",
    "Community Hospital", "Hospital", "Health System", "Health", "Children's Hospital",
    "Rehabilitation Hospital", "Behavioral Health Center", "Cancer Center", "Heart Institute",
]  # fmt: skip
PRACTICES = [
    "Family Practice", "Family Medicine", "Internal Medicine", "Pediatrics", "Urgent Care",
    "Orthopedics", "Women's Health", "Dermatology", "Cardiology Associates", "Primary Care",
    "Medical Group", "Physicians Group", "Eye Care", "Oncology", "Neurology Associates",
    "Gastroenterology", "Sports Medicine", "ENT Associates", "Pulmonology", "Health Center",
]  # fmt: skip
PLACES = [
    "Lakeside", "Riverside", "Valley", "Summit", "Pinecrest", "Oak Ridge", "Harbor",
    "Meadowbrook", "Cedar", "Northside", "Southside", "Westside", "Eastside", "Bayview",
    "Hillcrest", "Parkview", "Fairview", "Brookside", "Willow Creek", "Mountain View", "Prairie",
    "Coastal", "Heartland", "Piedmont", "Sunrise",
]  # fmt: skip
SURNAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Kim", "Chen", "Shah",
]  # fmt: skip
FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Charles", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra",
    "Mark", "Ashley", "Priya", "Wei", "Carlos", "Sofia", "Ahmed", "Fatima", "Hiroshi", "Mei",
]  # fmt: skip
CREDENTIALS = ["MD", "MD", "MD", "DO", "NP", "PA-C", "DDS", "DPM"]
LAB_BRANDS = [
    "Quantis", "LabCore", "Meridian", "Apex", "Sentinel", "Clearview", "Precision", "AccuPath",
    "Keystone", "Beacon",
]  # fmt: skip
PHARMACY_CHAINS = ["CareRx", "MedMart", "HealthWay", "Corner Drug", "PillBox", "RxExpress"]
INSURERS = [
    "Blue Horizon", "Unity Health Plan", "Cardinal Health Plans", "Evergreen Health",
    "Pioneer Health", "Keystone Health", "Guardian Care", "Northstar Health Plan",
    "Patriot Health", "Harvest Health Partners",
]  # fmt: skip
INSURANCE_PRODUCTS = [
    "Medicare Advantage", "Medicaid", "Individual & Family", "Employer Plans", "Dental",
    "Vision",
]  # fmt: skip
STREETS = [
    "Main", "Oak", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Pine",
    "Church", "Market", "Union", "Franklin", "Highland", "Center", "Medical", "University",
]  # fmt: skip
STREET_KINDS = ["St", "Ave", "Blvd", "Rd", "Dr", "Pkwy", "Way"]
STATE_NAMES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin",
    "WY": "Wyoming", "PR": "Puerto Rico",
}  # fmt: skip
# Downtown ZIPs of large metros: the densest (slowest) `near` searches.
METRO_ZIPS = [
    "10001", "60601", "90012", "77002", "85004", "19103", "78205", "92101", "75201", "95113",
    "30303", "02108", "98101", "80202", "33130", "48226", "55401", "63101", "97204", "37203",
]  # fmt: skip

# What people type: two or three letters of a word, whole words, two words.
PREFIXES = ["st", "sa", "me", "mer", "reg", "fam", "ph", "ce", "pe", "ca", "ho", "la", "va"]
WORDS = [
    "mercy", "pharmacy", "regional", "pediatrics", "laboratories", "hospital", "family",
    "urgent", "memorial", "diagnostics", "cardiology", "providence", "health", "medical",
]  # fmt: skip
TWO_WORDS = [
    "st mary", "family practice", "regional medical", "urgent care", "saint joseph",
    "medical center", "carerx pharmacy", "good samaritan", "internal medicine", "quantis lab",
]  # fmt: skip
TYPE_QUERIES = [
    ("health", SourceType.CLINICAL),
    ("medical", SourceType.CLINICAL),
    ("care", SourceType.PHARMACY),
    ("rx", SourceType.PHARMACY),
    ("lab", SourceType.LAB),
    ("plan", SourceType.INSURANCE),
    ("md", SourceType.PRACTITIONER),
]

TYPE_WEIGHTS = [
    ("hospital", SourceType.CLINICAL, 0.12),
    ("practice", SourceType.CLINICAL, 0.33),
    ("practitioner", SourceType.PRACTITIONER, 0.18),
    ("pharmacy", SourceType.PHARMACY, 0.20),
    ("lab", SourceType.LAB, 0.12),
    ("insurer", SourceType.INSURANCE, 0.05),
]


# ---------------------------------------------------------------------------- the directory
@dataclass
class Directory:
    """The generated entries plus what the query mix draws from."""

    entries: list[dict[str, Any]]
    ids: list[str] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)
    cities: list[str] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)


def zip_pool() -> list[dict[str, Any]]:
    """Every active, standard ZIP code with a centroid, in ZIP order (deterministic)."""
    pool = [
        z
        for z in zipcodes.filter_by(zip_code_type="STANDARD", active=True)
        if z.get("lat") and z.get("long")
    ]
    return sorted(pool, key=lambda z: z["zip_code"])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:70].strip("-")


def _acronym(name: str) -> str | None:
    letters = [w[0] for w in re.findall(r"[A-Za-z][A-Za-z']*", name) if w[0].isupper()]
    return "".join(letters) if len(letters) >= 3 else None


def _name(rng: random.Random, kind: str, city: str, state: str) -> tuple[str, list[str]]:
    """A realistic name and aliases for one source of ``kind``."""
    aliases: list[str] = []
    if kind == "hospital":
        suffix = rng.choice(HOSPITALS)
        roll = rng.random()
        if roll < 0.30:
            saint = rng.choice(SAINTS)
            possessive = "'s" if rng.random() < 0.5 else ""
            name = f"St. {saint}{possessive} {suffix}"
            aliases.append(f"Saint {saint}{possessive} {suffix}")
        elif roll < 0.50:
            faith = rng.choice(FAITHS)
            name = f"{faith} {suffix}" + (f" {city}" if rng.random() < 0.5 else "")
        elif roll < 0.75:
            name = f"{city} {suffix}"
        elif roll < 0.88:
            name = f"{rng.choice(SURNAMES)} Memorial Hospital"
        elif roll < 0.94:
            name = f"University of {STATE_NAMES.get(state, state)} Medical Center"
        else:
            name = f"{rng.choice(PLACES)} {suffix}"
        if rng.random() < 0.4 and (acronym := _acronym(name)):
            aliases.append(acronym)
        if rng.random() < 0.1:
            aliases.append(f"{city} {rng.choice(HOSPITALS)}")  # a former name
    elif kind == "practice":
        practice = rng.choice(PRACTICES)
        roll = rng.random()
        if roll < 0.35:
            name = f"{city} {practice}"
        elif roll < 0.6:
            name = f"{rng.choice(SURNAMES)} {practice}"
        elif roll < 0.8:
            name = f"{rng.choice(PLACES)} {practice}"
        else:
            first, second = rng.sample(SURNAMES, 2)
            name = f"{first} & {second} {practice}"
        if rng.random() < 0.2:
            aliases.append(f"{practice} of {city}")
    elif kind == "practitioner":
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        credential = rng.choice(CREDENTIALS)
        name = f"{first} {last}, {credential}"
        if credential in ("MD", "DO"):
            aliases.append(f"Dr. {first} {last}")
        if rng.random() < 0.3:
            aliases.append(f"{last} {rng.choice(PRACTICES)}")
    elif kind == "lab":
        roll = rng.random()
        brand = rng.choice(LAB_BRANDS)
        if roll < 0.45:
            name = f"{brand} Laboratories - {city}"
            aliases.append(f"{brand} Labs")
        elif roll < 0.7:
            name = f"{brand} Diagnostics {city}"
        elif roll < 0.9:
            name = f"{city} Diagnostic Laboratory"
        else:
            name = f"{rng.choice(SURNAMES)} Pathology Associates"
    elif kind == "pharmacy":
        roll = rng.random()
        if roll < 0.65:
            chain = rng.choice(PHARMACY_CHAINS)
            name = f"{chain} Pharmacy #{rng.randrange(1, 10000):04d}"
            aliases.append(f"{chain} {city}")
        elif roll < 0.8:
            name = f"{rng.choice(SURNAMES)} Pharmacy"
        elif roll < 0.9:
            name = f"{city} Drug"
        else:
            name = f"{rng.choice(PLACES)} Apothecary"
    else:  # insurer
        brand = rng.choice(INSURERS)
        if rng.random() < 0.5:
            name = f"{brand} of {STATE_NAMES.get(state, state)}"
        else:
            name = f"{brand} {rng.choice(INSURANCE_PRODUCTS)}"
        if rng.random() < 0.3 and (acronym := _acronym(brand)):
            aliases.append(acronym)
    return name, aliases


def generate(count: int, seed: int) -> Directory:
    """``count`` directory entries, the same ones for the same seed."""
    rng = random.Random(seed)
    pool = zip_pool()
    kinds = [k for k, _, _ in TYPE_WEIGHTS]
    weights = [w for _, _, w in TYPE_WEIGHTS]
    types = {k: t for k, t, _ in TYPE_WEIGHTS}
    result = Directory(entries=[])
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        place = rng.choice(pool)
        city, state = place["city"].title(), place["state"]
        name, aliases = _name(rng, kind, city, state)
        source_id = f"{_slug(name)}-{index:06d}"
        lat = round(float(place["lat"]) + rng.uniform(-0.02, 0.02), 5)
        lon = round(float(place["long"]) + rng.uniform(-0.02, 0.02), 5)
        entry: dict[str, Any] = {
            "id": source_id,
            "name": name,
            "type": types[kind].value,
            "aliases": aliases,
            "address": {
                "line": f"{rng.randrange(1, 9999)} {rng.choice(STREETS)} "
                f"{rng.choice(STREET_KINDS)}",
                "city": city,
                "state": state,
                "zip": place["zip_code"],
            },
            "location": {"lat": lat, "lon": lon},
            "fhir_base_url": f"https://fhir.{_slug(name)[:40].strip('-')}.example/r4",
            "sync_interval": rng.choice([3600, 21600, 86400]),
        }
        if rng.random() < 0.05:
            entry["category"] = "BASIC"
            entry["basic_auth"] = "password_grant"
        else:
            oauth: dict[str, Any] = {"client_id": f"tether-{index:06d}"}
            if rng.random() < 0.25:
                oauth["client_secret"] = f"secret-{rng.getrandbits(64):016x}"
            entry["oauth"] = oauth
        if rng.random() < 0.01:
            entry["retired"] = True
        result.entries.append(entry)
        result.ids.append(source_id)
        result.zips.append(place["zip_code"])
        result.cities.append(city)
        result.points.append((lat, lon))
    return result


# ---------------------------------------------------------------------------- the query mix
@dataclass(frozen=True)
class Search:
    kind: str
    query: str | None = None
    type: SourceType | None = None
    near: str | None = None
    radius: float | None = None
    offset: int = 0

    def params(self) -> dict[str, Any]:
        """The same search as ``GET /v1/data-sources`` query parameters."""
        params: dict[str, Any] = {"limit": PAGE, "offset": self.offset}
        if self.query:
            params["query"] = self.query
        if self.type:
            params["type"] = self.type.value
        if self.near:
            params["near"] = self.near
            params["radius"] = self.radius
        return params


def _city_word(rng: random.Random, data: Directory) -> str:
    return rng.choice(data.cities).lower().split()[0]


QUERY_KINDS: dict[str, Callable[[random.Random, Directory], Search]] = {
    # two or three letters of one word: the broadest matches
    "prefix": lambda rng, d: Search("prefix", query=rng.choice(PREFIXES)),
    "word": lambda rng, d: Search(
        "word",
        query=rng.choice(
            [*WORDS, _city_word(rng, d), _city_word(rng, d), rng.choice(SURNAMES).lower()]
        ),
    ),
    "two_words": lambda rng, d: Search(
        "two_words",
        query=rng.choice(
            [
                *TWO_WORDS,
                f"{_city_word(rng, d)} hospital",
                f"{rng.choice(SURNAMES).lower()} pharmacy",
                f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}".lower(),
            ]
        ),
    ),
    "type_filter": lambda rng, d: Search("type_filter", *rng.choice(TYPE_QUERIES)),
    "near_zip": lambda rng, d: Search(
        "near_zip",
        near=rng.choice(METRO_ZIPS) if rng.random() < 0.5 else rng.choice(d.zips),
        radius=RADIUS,
    ),
    "near_latlon": lambda rng, d: _near_latlon(rng, d),
    "type_only": lambda rng, d: Search("type_only", type=rng.choice(list(SourceType))),
    "paged": lambda rng, d: _paged(rng),
}


def _near_latlon(rng: random.Random, data: Directory) -> Search:
    lat, lon = rng.choice(data.points)
    lat, lon = lat + rng.uniform(-0.05, 0.05), lon + rng.uniform(-0.05, 0.05)
    query = rng.choice(WORDS) if rng.random() < 0.5 else None
    return Search("near_latlon", query=query, near=f"{lat:.4f},{lon:.4f}", radius=RADIUS)


def _paged(rng: random.Random) -> Search:
    if rng.random() < 0.5:
        query = rng.choice([*PREFIXES, *WORDS])
        return Search("paged", query=query, offset=rng.randrange(1, 51) * PAGE)
    kind = rng.choice(list(SourceType))
    return Search("paged", type=kind, offset=rng.randrange(1, 251) * PAGE)


def make_plan(rng: random.Random, data: Directory, per_kind: int) -> list[Search | str]:
    """``per_kind`` searches of every kind plus as many baseline reads (ids), shuffled."""
    plan: list[Search | str] = []
    for make in QUERY_KINDS.values():
        plan.extend(make(rng, data) for _ in range(per_kind))
    plan.extend(rng.choice(data.ids) for _ in range(per_kind))
    rng.shuffle(plan)
    return plan


# ---------------------------------------------------------------------------- measuring
BASELINE = "baseline_get"


def search_once(runtime: Runtime, search: Search) -> int:
    """One searchDataSources as the route does it: parse ``near``, then a read session."""
    place = directory.parse_near(search.near, search.radius)
    with runtime.db.read() as session:
        page = directory.search_data_sources(
            session,
            query=search.query,
            source_type=search.type,
            near=place,
            limit=PAGE,
            offset=search.offset,
        )
        return page.total


def get_once(runtime: Runtime, source_id: str) -> None:
    with runtime.db.read() as session:
        directory.get_data_source(session, source_id)


def run_direct(
    runtime: Runtime, data: Directory, *, seed: int, samples: int, warmup: int
) -> dict[str, Any]:
    rng = random.Random(seed + 1)
    for item in make_plan(rng, data, warmup):
        if isinstance(item, str):
            get_once(runtime, item)
        else:
            search_once(runtime, item)
    timings: dict[str, list[float]] = defaultdict(list)
    totals: dict[str, list[int]] = defaultdict(list)
    for item in make_plan(rng, data, samples):
        if isinstance(item, str):
            with Stopwatch() as sw:
                get_once(runtime, item)
            timings[BASELINE].append(sw.ms)
            continue
        with Stopwatch() as sw:
            total = search_once(runtime, item)
        timings[item.kind].append(sw.ms)
        totals[item.kind].append(total)
    all_searches = [ms for kind, values in timings.items() if kind != BASELINE for ms in values]
    baseline = Summary.of(timings[BASELINE])
    kinds: dict[str, Any] = {}
    for kind in [*QUERY_KINDS, "all_searches"]:
        summary = Summary.of(all_searches if kind == "all_searches" else timings[kind])
        matched = totals[kind] if kind in totals else [t for v in totals.values() for t in v]
        kinds[kind] = {
            **summary.as_dict(),
            "mean_total": round(sum(matched) / len(matched), 1),
            "p95_ratio": round(summary.p95 / baseline.p95, 2),
        }
    return {"baseline": baseline.as_dict(), "kinds": kinds}


def run_http(
    runtime: Runtime, data: Directory, *, seed: int, requests: int, warmup: int
) -> dict[str, Any]:
    from tether.bootstrap import create_app
    from tether.testing.live_server import serve

    with runtime.db.write() as session:
        tenant = tenants.create_tenant(session, name="Bench Health")
        _, api_key = api_keys.create_api_key(
            session, tenant_id=tenant.id, pepper=runtime.secret_key
        )
    rng = random.Random(seed + 2)
    makers = list(QUERY_KINDS.values())

    def plan(count: int) -> list[Search]:
        return [makers[i % len(makers)](rng, data) for i in range(count)]

    timings: dict[str, list[float]] = defaultdict(list)
    with (
        serve(create_app(runtime)) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        ) as http,
    ):

        def search(item: Search) -> float:
            with Stopwatch() as sw:
                response = http.get("/v1/data-sources", params=item.params())
            if response.status_code != 200:
                raise RuntimeError(f"{item}: {response.status_code} {response.text[:300]}")
            return sw.ms

        def health() -> float:
            with Stopwatch() as sw:
                response = http.get("/healthz")
            response.raise_for_status()
            return sw.ms

        for item in plan(warmup):
            search(item)
            health()
        measured = plan(requests)
        rng.shuffle(measured)
        for item in measured:
            timings[item.kind].append(search(item))
            timings["healthz"].append(health())
    searches = [ms for kind, values in timings.items() if kind != "healthz" for ms in values]
    baseline = Summary.of(timings["healthz"])
    overall = Summary.of(searches)
    return {
        "baseline_healthz": baseline.as_dict(),
        "search": {**overall.as_dict(), "p95_ratio": round(overall.p95 / baseline.p95, 2)},
        "search_p95_by_kind": {
            kind: round(Summary.of(timings[kind]).p95, 3) for kind in QUERY_KINDS
        },
    }


def bench_engine(engine: str, data: Directory, path: Path, args: argparse.Namespace) -> dict:
    with bench_runtime(engine) as runtime:
        version = server_version(runtime)
        with Stopwatch() as imported:
            written = import_directory(runtime, path)
        analyze_ms = None
        if not runtime.db.sqlite:
            # Autovacuum would ANALYZE the new rows within a minute; do it now, deterministically.
            with Stopwatch() as analyzed, runtime.db.write() as session:
                session.execute(text("ANALYZE"))
            analyze_ms = round(analyzed.ms, 1)
        print(
            f"[{engine}] {version}: imported {written} sources in {imported.ms / 1000:.1f} s "
            f"({written / (imported.ms / 1000):,.0f} sources/s)",
            flush=True,
        )
        direct = run_direct(runtime, data, seed=args.seed, samples=args.samples, warmup=args.warmup)
        http = run_http(
            runtime, data, seed=args.seed, requests=args.http_requests, warmup=args.warmup
        )
    return {
        "engine": engine,
        "server": version,
        "import": {
            "sources": written,
            "seconds": round(imported.ms / 1000, 2),
            "sources_per_s": round(written / (imported.ms / 1000)),
            "analyze_ms": analyze_ms,
        },
        "direct": direct,
        "http": http,
    }


def report(result: dict[str, Any]) -> str:
    direct, http = result["direct"], result["http"]
    base = direct["baseline"]
    rows = [
        [
            kind,
            s["n"],
            s["mean_total"],
            s["p50"],
            s["p95"],
            s["p99"],
            s["max"],
            s["p95_ratio"],
            "yes" if s["p95"] < TARGET_P95_MS else "NO",
        ]
        for kind, s in direct["kinds"].items()
    ]
    rows.append([BASELINE, base["n"], "-", base["p50"], base["p95"], base["p99"], base["max"], 1.0])
    rows[-1].append("")
    headers = ["kind", "n", "matches", "p50 ms", "p95 ms", "p99 ms", "max ms", "p95/base", "<20"]
    search, health = http["search"], http["baseline_healthz"]
    lines = [
        f"[{result['engine']}] searchDataSources, direct (service in a read session):",
        table(headers, rows),
        "",
        f"[{result['engine']}] HTTP GET /v1/data-sources over loopback: "
        f"p50 {search['p50']:.2f} ms, p95 {search['p95']:.2f} ms, p99 {search['p99']:.2f} ms "
        f"(n={search['n']}); GET /healthz p95 {health['p95']:.2f} ms; "
        f"ratio {search['p95_ratio']:.2f}",
        "  p95 by kind: "
        + ", ".join(f"{k} {v:.1f}" for k, v in http["search_p95_by_kind"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench directory_search", description=__doc__)
    parser.add_argument("--sources", type=int, default=DEFAULT_SOURCES)
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="per query kind")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="per query kind")
    parser.add_argument("--http-requests", type=int, default=DEFAULT_HTTP_REQUESTS)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    engines = args.engine or available_engines()
    missing = set(engines) - set(available_engines())
    if missing:
        parser.error(
            f"not available: {', '.join(sorted(missing))} (run under scripts/with-services)"
        )
    quiet_logging()

    with Stopwatch() as generated:
        data = generate(args.sources, args.seed)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tether-bench-dir-") as tmp:
        path = Path(tmp) / "directory.json"
        path.write_text(json.dumps({"sources": data.entries}))
        print(
            f"generated {len(data.entries)} sources (seed {args.seed}) in "
            f"{generated.ms / 1000:.1f} s; {path.stat().st_size / 1e6:.1f} MB JSON",
            flush=True,
        )
        for engine in engines:
            with Stopwatch() as took:
                result = bench_engine(engine, data, path, args)
            result["wall_seconds"] = round(took.ms / 1000, 1)
            print(report(result), f"\n[{engine}] {result['wall_seconds']} s wall\n", flush=True)
            results.append(result)
    written = write_results(
        "directory_search",
        {
            "benchmark": "directory_search",
            "target_p95_ms": TARGET_P95_MS,
            "options": vars(args) | {"engine": engines},
            "machine": machine(),
            "results": results,
        },
    )
    print(f"results: {written}")
    return 0
