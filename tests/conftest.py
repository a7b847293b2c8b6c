"""Fixtures of the service tests (a live `pprl serve` per database kind)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
