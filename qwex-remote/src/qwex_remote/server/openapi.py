"""The committed spec (`qwex-remote/openapi.json`), exported deterministically from the app.

`python -m qwex_remote.server.openapi > qwex-remote/openapi.json` rewrites it; a
test fails when it differs from what the code produces.
"""

from __future__ import annotations

import json


def openapi_json() -> str:
    """The app's OpenAPI document: sorted keys, two-space indent, a final newline."""
    from qwex_remote.server.app import create_app
    from qwex_remote.server.settings import ServerSettings

    spec = create_app(ServerSettings()).openapi()
    return json.dumps(spec, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(openapi_json(), end="")
