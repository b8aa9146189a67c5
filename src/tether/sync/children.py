"""What a worker's child processes (page processes, the store process) have in common."""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent: int) -> None:
    """In a child: exit as soon as the process that started it is gone (one killed with
    SIGKILL cannot stop its children, and their pipes never see end-of-file)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
