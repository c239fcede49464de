"""A real Chroma server per test module (module-scoped: starting one takes a second)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tuner_helpers import ChromaProcess


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaProcess]:
    server = ChromaProcess(data_dir=tmp_path_factory.mktemp("chroma"))
    try:
        server.start()
        yield server
    finally:
        server.close()
