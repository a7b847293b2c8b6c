"""Fixtures of the service tests (a live `pprl serve` per database kind), and the peers
installed in the background while the other tests run."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.peers import PEERS, peer_python
from tests.service_harness import (
    Service,
    database_kinds,
    make_providers,
    make_token_providers,
    running_service,
)


@pytest.fixture(scope="session")
def provider_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three providers' encodings of a small synthetic population (truth beside them)."""
    return make_providers(tmp_path_factory.mktemp("providers"), people=1500)


@pytest.fixture(scope="session")
def households_3000(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three providers' encodings of 3,000 synthetic people (seed 4; ``truth.csv`` beside
    them): enough pairs for each provider's valley, and a claims extract of few duplicates
    among many relatives."""
    return make_providers(tmp_path_factory.mktemp("households"), people=3000, seed=4)


@pytest.fixture(scope="session")
def token_provider_files(provider_files: dict[str, Path],
                         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same extracts with OpenToken tokens too, some records of ehr and claims sharing a
    placeholder identity (``service_harness.make_token_providers``)."""
    return make_token_providers(provider_files["ehr"].parent,
                                tmp_path_factory.mktemp("token-providers"))


@pytest.fixture(scope="module", params=database_kinds())
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    """A live service with one worker process, on a fresh database of each kind."""
    with running_service(request.param, tmp_path_factory.mktemp(f"svc-{request.param}")
                         ) as live:
        yield live


# Modules of a minute or more on 2 cores, run first: the two test processes (pytest-xdist,
# whole modules each) then finish together instead of one waiting on a long module at the end.
_LONG_MODULES = ("test_service_worker.py", "test_benchmark_suite.py", "test_service_cohorts.py",
                 "test_service_fuzz.py", "test_service_flow.py", "test_service_security.py",
                 "test_estimate.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long modules first (the rest in their order). When a test comparing with a peer tool is
    collected, every peer's venv is installed at once, side by side, in background threads: on
    a fresh clone their downloads (about 100 s one after another) then overlap the other tests.
    A test needing a peer waits for it."""
    rank = {name: place for place, name in enumerate(_LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    if any(item.get_closest_marker("oracle") for item in items):
        for name in PEERS:
            threading.Thread(target=_install_quietly, args=(name,), daemon=True).start()


def _install_quietly(name: str) -> None:
    # a failure is not reported here: the test needing this peer installs it and says why
    with contextlib.suppress(Exception):
        peer_python(name)
