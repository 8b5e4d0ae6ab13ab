"""A real OpenSearch node (server + job-scheduler, ML Commons, k-NN, neural-search), from Maven Central.

    from kit.realnode import RealNode
    with RealNode("2.19.6") as node:      # assembles into the cache on first use
        print(node.url)

Shell: ``python -m kit.realnode fetch|start|stop|status``. See docs/real-node.md.
"""

from kit.realnode.assemble import assemble, cache_root, fetch, home_dir
from kit.realnode.node import DEV_SETTINGS, RealNode
from kit.realnode.recipe import DEFAULT_VERSION, VERSIONS

__all__ = ["DEFAULT_VERSION", "DEV_SETTINGS", "VERSIONS", "RealNode", "assemble", "cache_root", "fetch",
           "home_dir"]
