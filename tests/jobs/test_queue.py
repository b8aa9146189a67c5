"""make_huey: the queue URL picks the huey storage, and anything else is a clear error."""

from __future__ import annotations

from pathlib import Path

import huey
import pytest

from tether.errors import ConfigurationError
from tether.jobs import make_huey


def test_sqlite_url_opens_a_file_queue_creating_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "queue.db"
    queue = make_huey(f"sqlite:///{path}", name="q1")
    assert isinstance(queue, huey.SqliteHuey)
    assert queue.name == "q1" and not queue.results
    assert path.exists()
    queue.storage.close()


def test_redis_url_opens_a_priority_redis_queue() -> None:
    queue = make_huey("redis://127.0.0.1:1/3", name="tether")
    assert isinstance(queue, huey.PriorityRedisHuey)
    assert queue.storage.queue_key == "huey.redis.tether"
    assert make_huey("rediss://example.test:6380/0").storage.pool.connection_kwargs["port"] == 6380


def test_immediate_mode_is_passed_through(tmp_path: Path) -> None:
    assert make_huey(f"sqlite:///{tmp_path / 'q.db'}", immediate=True).immediate


@pytest.mark.parametrize(
    "url",
    ["", "queue.db", "sqlite://", "sqlite:///", "sqlite:///:memory:", "amqp://u:hunter2@mq/"],
)
def test_other_urls_are_a_configuration_error_that_hides_credentials(url: str) -> None:
    with pytest.raises(ConfigurationError, match="queue URL") as caught:
        make_huey(url)
    assert "hunter2" not in str(caught.value)


def test_an_unreachable_queue_does_not_fail_the_request(runtime) -> None:
    """The database is the truth: a lost enqueue is logged and left to the sweeper."""
    from tether.jobs import Jobs, make_huey

    assert isinstance(runtime.jobs, Jobs)
    runtime.jobs.close()
    runtime.jobs = Jobs(runtime, huey=make_huey("redis://127.0.0.1:9/0", name="down"))
    runtime.enqueue("sync", connection_id=1, epoch=1)  # no exception
    with pytest.raises(LookupError):
        runtime.enqueue("no-such-task")
