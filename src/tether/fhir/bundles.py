"""Reading a searchset Bundle's links (FHIR R4 §3.1.1.3): shared by the page checks, which
parse the whole page, and the paging, which reads the links ahead of the entries."""

from __future__ import annotations


def next_link(links: object) -> object:
    """The ``url`` of the first ``Bundle.link`` whose relation is ``next`` (whatever its type:
    the caller decides what a URL that is not a string means); None when there is none."""
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            return link.get("url")
    return None
