"""Error entries: problems keep their code, unexpected errors are masked, all are outcomes."""

from __future__ import annotations

import pytest
from graphql import GraphQLError

from tests.graphql.sdk_wire import check_outcome
from tether import errors
from tether.graphql.errors import ISSUE_TYPES, NotSupported, format_error

PROBLEMS = [
    (errors.InvalidRequest("bad", code="X"), "invalid", "X"),
    (errors.AuthenticationRequired("who?"), "login", "UNAUTHENTICATED"),
    (errors.Forbidden("no"), "forbidden", "FORBIDDEN"),
    (errors.NotFound("none"), "not-found", "NOT_FOUND"),
    (errors.Conflict("later", code="INVALID_TRANSITION"), "conflict", "INVALID_TRANSITION"),
    (errors.AccessEnded("gone for good"), "business-rule", "ACCESS_ENDED"),
    (errors.Gone("used"), "expired", "GONE"),
    (errors.RateLimited("slow down"), "throttled", "RATE_LIMITED"),
    (errors.UpstreamError("source broke"), "transient", "UPSTREAM_ERROR"),
    (NotSupported("not here", code="LOGIN_NOT_ENABLED"), "not-supported", "LOGIN_NOT_ENABLED"),
]


@pytest.mark.parametrize(("problem", "issue_code", "code"), PROBLEMS)
def test_problems_become_operation_outcomes(
    problem: errors.ProblemError, issue_code: str, code: str
) -> None:
    entry = format_error(GraphQLError(problem.detail, path=["f"], original_error=problem))
    assert check_outcome(entry)["code"] == issue_code
    assert entry["extensions"]["code"] == code
    assert entry["extensions"]["status"] == problem.status
    assert entry["extensions"]["type"] == problem.type
    assert entry["message"] == problem.detail and entry["path"] == ["f"]


def test_every_problem_class_has_an_issue_type() -> None:
    classes = [errors.ProblemError, NotSupported]
    while classes:
        cls = classes.pop()
        assert cls.slug in ISSUE_TYPES, cls
        classes += cls.__subclasses__()


def test_unexpected_errors_are_masked() -> None:
    crash = RuntimeError("password=hunter2 at db host x")
    entry = format_error(
        GraphQLError(str(crash), path=["getMemberConnections"], original_error=crash)
    )
    assert entry["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert check_outcome(entry)["code"] == "exception"
    assert "hunter2" not in str(entry)
