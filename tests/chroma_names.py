"""Chroma 1.5.9's rule for collection names, for tests of names the routers make up."""

from __future__ import annotations

import re

CHROMA_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
