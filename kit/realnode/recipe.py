"""What a real node of each release line is made of: Maven coordinates, JDKs, hand-built modules.

Checked by hand against Maven Central on 2026-12-07 (see docs/real-node.md): 2.19.6 and 3.6.0 are the
newest releases of their lines whose server archive *and* four plugin zips all resolve (2.19.3-2.19.5 and
every 3.x but 3.6.0 lack one or more plugin zips).
"""

from __future__ import annotations

import os

from dataclasses import dataclass, field

DEFAULT_VERSION = "2.19.6"
VERSIONS = ("2.19.6", "3.6.0")

SERVER = "org.opensearch.distribution.integ-test-zip:opensearch"
# Install order matters: each plugin's extended plugins must already be there.
PLUGINS = (
    ("org.opensearch.plugin:opensearch-job-scheduler", "opensearch-job-scheduler"),
    ("org.opensearch.plugin:opensearch-ml-plugin", "opensearch-ml"),
    ("org.opensearch.plugin:opensearch-knn", "opensearch-knn"),
    ("org.opensearch.plugin:neural-search", "opensearch-neural-search"),
)


@dataclass(frozen=True)
class Module:
    """A core module the 2.19 integ-test archive leaves out, rebuilt from its published jar.

    ``classnames`` lists the plugin class across releases (renamed over time); the one present in the
    jar wins. ``policy`` is the module's plugin-security.policy, verbatim from OpenSearch's sources.
    """

    name: str
    artifact: str
    classnames: tuple[str, ...]
    description: str
    extended: tuple[str, ...] = ()
    policy: str = ""


_PAINLESS_POLICY = """grant {
  // needed to generate runtime classes
  permission java.lang.RuntimePermission "createClassLoader";

  // needed to find the classloader to load whitelisted classes from
  permission java.lang.RuntimePermission "getClassLoader";
};
"""

# Why each: k-NN extends lang-painless; the default mapping's `english` analyzer is analysis-common's;
# the ingest pipeline's `remove` processor is ingest-common's; rank_features (neural_sparse) is
# mapper-extras'; reindex's delete_by_query is how ML Commons deletes a local model's chunks;
# search-pipeline-common has the generic search processors.
MODULES = (
    Module("lang-painless", "org.opensearch.plugin:lang-painless",
           ("org.opensearch.painless.PainlessModulePlugin", "org.opensearch.painless.PainlessPlugin"),
           "An easy, safe and fast scripting language for OpenSearch", policy=_PAINLESS_POLICY),
    Module("analysis-common", "org.opensearch.plugin:analysis-common",
           ("org.opensearch.analysis.common.CommonAnalysisModule",
            "org.opensearch.analysis.common.CommonAnalysisPlugin"),
           'Adds "built in" analyzers to OpenSearch.', extended=("lang-painless",)),
    Module("ingest-common", "org.opensearch.plugin:ingest-common",
           ("org.opensearch.ingest.common.IngestCommonModulePlugin",
            "org.opensearch.ingest.common.IngestCommonPlugin"),
           "Module for ingest processors that do not require additional security permissions or have "
           "large dependencies and resources", extended=("lang-painless",)),
    Module("mapper-extras", "org.opensearch.plugin:mapper-extras-client",
           ("org.opensearch.index.mapper.MapperExtrasModulePlugin", "org.opensearch.index.mapper.MapperExtrasPlugin"),
           "Adds advanced field mappers"),
    Module("reindex", "org.opensearch.plugin:reindex-client",
           ("org.opensearch.index.reindex.ReindexModulePlugin", "org.opensearch.index.reindex.ReindexPlugin"),
           "The Reindex module adds APIs to reindex from one index to another or update documents in place."),
    Module("search-pipeline-common", "org.opensearch.plugin:search-pipeline-common",
           ("org.opensearch.search.pipeline.common.SearchPipelineCommonModulePlugin",),
           "Modules for search pipeline processors"),
)


# ML Commons local models (TorchScript/ONNX) need DJL's PyTorch natives, which DJL downloads from its own
# site at deploy time. Maven Central has libtorch 2.5.1 (cxx11 ABI) and DJL's JNI for it built against
# DJL 0.32.0 (none for the 0.31.1 that ML Commons 2.19/3.6 bundles, and no precxx11 libtorch), so the
# node loads those: PYTORCH_LIBRARY_PATH/PYTORCH_VERSION/PYTORCH_FLAVOR pick the libtorch, and the JNI is
# placed in ML Commons' DJL cache under the name DJL 0.31.1 looks for. Checked: MiniLM TorchScript
# deploys and embeds (tests/real); other DJL JNI calls across the 0.31/0.32 boundary are unverified.
TORCH_NATIVE = "ai.djl.pytorch:pytorch-native-cpu:2.5.1:linux-x86_64"
TORCH_JNI = "ai.djl.pytorch:pytorch-jni:2.5.1-0.32.0"
TORCH_VERSION = "2.5.1"
TORCH_FLAVOR = "cpu"


@dataclass(frozen=True)
class Line:
    """One release line: the JDK it runs on and the Java level of hand-made descriptors."""

    jdk: str
    java_level: str
    extra_jvm: tuple[str, ...] = field(default=())


def line(version: str) -> Line:
    major = int(version.split(".")[0])
    if major == 2:
        # 2.x installs a SecurityManager, which JDK 24+ removed: it needs a JDK 11-21 (17 here).
        return Line(jdk="/usr/lib/jvm/java-17-openjdk-amd64", java_level="11")
    return Line(jdk=_first_jdk(*JDK21_PLUS), java_level="21")


# 3.x needs Java 21+: Temurin 25 (Adoptium's apt package), else Debian's OpenJDK 25 or 21.
JDK21_PLUS = ("/usr/lib/jvm/temurin-25-jdk-amd64", "/usr/lib/jvm/java-25-openjdk-amd64",
              "/usr/lib/jvm/temurin-21-jdk-amd64", "/usr/lib/jvm/java-21-openjdk-amd64")


def _first_jdk(*homes: str) -> str:
    """The first installed JDK home, else the first (so the error names what to install)."""
    return next((h for h in homes if os.path.exists(os.path.join(h, "bin", "java"))), homes[0])


def plugin_version(version: str) -> str:
    return f"{version}.0"
