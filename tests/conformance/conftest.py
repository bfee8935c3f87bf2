"""One worker process per module, started and fed the way the Functions host does, with the Bicep's app settings."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from dev.emulators import Emulators
from tests.conftest import gateway_env
from tests.conformance.host import FunctionsHost
from tests.support.jwks import JwksServer
from tests.support.processes import REPO

APP_SETTINGS_BICEP = REPO / "infra" / "modules" / "appsettings.bicep"


def bicep_literal_settings() -> dict[str, str]:
    """The app settings infra/ deploys with a literal value (`NAME: 'value'`); the rest are resource references."""
    text = APP_SETTINGS_BICEP.read_text()
    # the settings resource's properties (`properties: union({…}, upstreamSecretSettings)`)
    block = text[text.index("properties:", text.index("name: 'appsettings'")):]
    return dict(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*):\s*'([^'$]*)'\s*$", block, re.M))


def conformance_env(emulators: Emulators, jwks: JwksServer) -> dict[str, str]:
    env = gateway_env(emulators, jwks)  # emulator connection strings and the test identities/keys
    env.update(bicep_literal_settings())  # then exactly what Azure gets where the Bicep sets a literal
    # In Azure the Bicep owns the Cosmos database and container (and turns creation off); on the emulator nothing
    # does, so the app creates them.
    env["COSMOS_CREATE_IF_MISSING"] = "true"
    env["FUNCTIONS_WORKER_RUNTIME"] = "python"  # set by the platform on Flex (functionAppConfig.runtime)
    return env


@pytest.fixture(scope="module")
def functions_host(emulators: Emulators, jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[FunctionsHost]:
    log = tmp_path_factory.mktemp("conformance") / "worker.log"
    host = FunctionsHost(REPO, conformance_env(emulators, jwks), log)
    try:
        yield host.start()
    finally:
        host.stop()


@pytest.fixture(scope="module")
def specialised_host(emulators: Emulators, jwks: JwksServer, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[FunctionsHost]:
    """The same app on a worker started as a placeholder and specialised by an environment reload."""
    base = tmp_path_factory.mktemp("conformance-placeholder")
    (base / "wwwroot").mkdir()
    host = FunctionsHost(REPO, conformance_env(emulators, jwks), base / "worker.log", placeholder=base / "wwwroot")
    try:
        yield host.start()
    finally:
        host.stop()
