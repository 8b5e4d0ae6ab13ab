"""The per-client index cache of kit.job.search lives and dies with the client (ids of dead clients are
reused by new ones; the UI server and tests make many clients in one process)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from kit.job.search import _IndexInfo, forget_index_info


class _Client:
    """Answers GET /<index> like a cluster: a mapping whose _meta names the weights of the image vectors."""

    def __init__(self, maker: str) -> None:
        self.maker = maker
        self.calls = 0

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return {"images": {"mappings": {"properties": {}, "_meta": {"oskit": {"vectors": {"image_embedding": self.maker}}}},
                           "settings": {"index": {}}}}


def test_the_weights_cache_goes_with_its_client() -> None:
    forget_index_info()
    client = _Client("oskit-clip-tiny")
    assert _IndexInfo.maker(client, "images") == "oskit-clip-tiny"
    assert _IndexInfo.maker(client, "images") == "oskit-clip-tiny"
    assert client.calls == 1  # read once per client
    del client
    gc.collect()
    kept = [k for k, v in vars(_IndexInfo).items() if not k.startswith("__") and isinstance(v, (dict, weakref.WeakKeyDictionary)) and len(v)]
    assert kept == []  # nothing of the dead client is kept (by object or by id)


def test_forget_drops_the_weights_too() -> None:
    client = _Client("oskit-clip-tiny")
    assert _IndexInfo.maker(client, "images") == "oskit-clip-tiny"
    forget_index_info(client)
    client.maker = "ViT-B-32"  # the index was migrated to another model
    assert _IndexInfo.maker(client, "images") == "ViT-B-32"
    assert client.calls == 2
