"""Alerts tests send through apprise in this process; apprise keeps a shared thread pool for
the life of the process. Shut it down after each module, so later tests that check no thread
runs (bulk loads fork only then) are not affected by test order."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _apprise_pools_shut_down_after_the_module():
    yield
    import apprise.apprise as core

    for name in ("_shared_executor", "_coordinator_executor"):
        pool = getattr(core, name, None)
        if pool is not None:
            pool.shutdown(wait=True)
            setattr(core, name, None)
