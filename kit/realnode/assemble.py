"""Download a real OpenSearch and its plugins from Maven Central and assemble a runnable home, cached.

Layout under :func:`cache_root` (``OSKIT_REAL_CACHE`` overrides it)::

    <version>/dl/                 server archive and plugin zips (Maven's own client fetched them)
    <version>/dl/modules/<name>/  jars of each core module the archive lacks (with their runtime deps)
    <version>/home/               the assembled node: archive + hand-built modules + installed plugins

Each step leaves a marker, so a second call does nothing. Nothing here starts a node (see node.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from kit.errors import RealNodeError
from kit.realnode import recipe

_MVN_DEP = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_RECIPE_ID = "oskit-realnode-2"  # bump when the assembled home's content changes


def cache_root() -> Path:
    """Where downloads and assembled homes live.

    Root's home is private (0700), and the node runs as a service user who must read its home, so a
    root caller gets /var/cache; anyone else gets ~/.cache (XDG_CACHE_HOME).
    """
    env = os.environ.get("OSKIT_REAL_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/oskit/opensearch")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "oskit" / "opensearch"


def version_dir(version: str) -> Path:
    return cache_root() / version


def home_dir(version: str) -> Path:
    return version_dir(version) / "home"


def _run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout[-3000:] + proc.stderr[-3000:]).strip()
        raise RealNodeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


# ------------------------------------------------------------------------------------------------ fetch
def _pom(artifact: str, deps: str, out: str) -> str:
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>oskit.realnode</groupId><artifactId>{artifact}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>{deps}</dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId>
    <version>3.6.1</version>
    <configuration><outputDirectory>{out}</outputDirectory><includeScope>runtime</includeScope></configuration>
  </plugin></plugins></build>
</project>
"""


def _dep(coord: str, version: str, *, zip_: bool = False, classifier: str | None = None) -> str:
    group, artifact = coord.split(":")
    if classifier is not None:
        return (f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{version}</version><classifier>{classifier}</classifier><exclusions><exclusion>"
                f"<groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>")
    if zip_:
        return (f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{version}</version><type>zip</type><exclusions><exclusion><groupId>*</groupId>"
                f"<artifactId>*</artifactId></exclusion></exclusions></dependency>")
    return (f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency>")


def fetch(version: str) -> Path:
    """Download the server archive, the four plugin zips and the module jars into the cache."""
    dl = version_dir(version) / "dl"
    marker = dl / ".fetched"
    if marker.exists() and marker.read_text().strip() == _RECIPE_ID:
        return dl
    if shutil.which("mvn") is None:
        raise RealNodeError("mvn (Apache Maven) is not installed; the real node is fetched with it",
                            hint="apt-get install -y maven (make real-node does this)")
    work = version_dir(version) / "mvn"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pv = recipe.plugin_version(version)
    zips = _dep(recipe.SERVER, version, zip_=True) + "".join(_dep(c, pv, zip_=True) for c, _ in recipe.PLUGINS)
    children = {"zips": _pom("zips", zips, str(dl))}
    for m in recipe.MODULES:
        children[m.name] = _pom(m.name, _dep(m.artifact, version), str(dl / "modules" / m.name))
    g, a, v, c = recipe.TORCH_NATIVE.split(":")
    jg, ja, jv = recipe.TORCH_JNI.split(":")
    children["djl"] = _pom("djl", _dep(f"{g}:{a}", v, classifier=c) + _dep(f"{jg}:{ja}", jv),
                           str(dl / "djl"))
    for name, pom in children.items():
        (work / name).mkdir()
        (work / name / "pom.xml").write_text(pom)
    modules = "".join(f"<module>{n}</module>" for n in children)
    (work / "pom.xml").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>oskit.realnode</groupId><artifactId>reactor</artifactId><version>1</version>"
        f"<packaging>pom</packaging><modules>{modules}</modules></project>\n")
    # A private local repository, deleted afterwards: the cache keeps one copy of each file.
    repo = work / "repo"
    _run(["mvn", "-B", "-q", "-ntp", f"-Dmaven.repo.local={repo}", f"{_MVN_DEP}:copy-dependencies"],
         cwd=work, what=f"downloading OpenSearch {version} from Maven Central")
    missing = [p for p in [dl / f"opensearch-{version}.zip"] + [dl / f"{c.split(':')[1]}-{pv}.zip"
                                                               for c, _ in recipe.PLUGINS]
               + [dl / "djl" / f"{a}-{v}-{c}.jar", dl / "djl" / f"{ja}-{jv}.jar"] if not p.exists()]
    if missing:
        raise RealNodeError(f"Maven left out {', '.join(p.name for p in missing)}")
    shutil.rmtree(work, ignore_errors=True)
    marker.write_text(_RECIPE_ID + "\n")
    return dl


# --------------------------------------------------------------------------------------------- assemble
_JAR_NAME = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def _artifact_of(jar: str) -> str:
    m = _JAR_NAME.match(jar)
    return m.group("artifact") if m else jar


def _build_module(home: Path, module: recipe.Module, jars: Path, version: str) -> None:
    """modules/<name>/: the module's jar and runtime deps that core does not already carry."""
    core = {_artifact_of(p.name) for p in (home / "lib").glob("*.jar")}
    dest = home / "modules" / module.name
    dest.mkdir(parents=True)
    main_jar = None
    for jar in sorted(jars.glob("*.jar")):
        if _artifact_of(jar.name) in core:
            continue  # jar hell: "duplicate codebases between plugin and core"
        shutil.copy2(jar, dest / jar.name)
        if _artifact_of(jar.name) == module.artifact.split(":")[1]:
            main_jar = jar
    if main_jar is None:
        raise RealNodeError(f"module {module.name}: {module.artifact}:{version} jar is not in {jars}")
    with zipfile.ZipFile(main_jar) as z:
        names = set(z.namelist())
    classname = next((c for c in module.classnames if c.replace(".", "/") + ".class" in names), None)
    if classname is None:
        raise RealNodeError(f"module {module.name}: none of {module.classnames} is in {main_jar.name}")
    level = recipe.line(version).java_level
    (dest / "plugin-descriptor.properties").write_text(
        f"description={module.description}\nversion={version}\nname={module.name}\n"
        f"classname={classname}\njava.version={level}\nopensearch.version={version}\n"
        f"extended.plugins={','.join(module.extended)}\nhas.native.controller=false\n")
    if module.policy:
        (dest / "plugin-security.policy").write_text(module.policy)


def _add_torch(home: Path, jars: Path) -> None:
    """home/djl/libtorch/ (libtorch, libc10, …) and home/djl/libdjl_torch.so from DJL's Maven jars."""
    g, a, v, c = recipe.TORCH_NATIVE.split(":")
    _, ja, jv = recipe.TORCH_JNI.split(":")
    lib = home / "djl" / "libtorch"
    lib.mkdir(parents=True)
    prefix = f"pytorch/{recipe.TORCH_FLAVOR}/{c}/"
    with zipfile.ZipFile(jars / f"{a}-{v}-{c}.jar") as z:
        for name in z.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                (lib / name[len(prefix):]).write_bytes(z.read(name))
    if not (lib / "libtorch.so").exists():
        raise RealNodeError(f"{a}-{v}-{c}.jar has no {prefix}libtorch.so")
    with zipfile.ZipFile(jars / f"{ja}-{jv}.jar") as z:
        (home / "djl" / "libdjl_torch.so").write_bytes(z.read(f"jnilib/{c}/{recipe.TORCH_FLAVOR}/libdjl_torch.so"))


def java_env(version: str) -> dict[str, str]:
    jdk = recipe.line(version).jdk
    if not Path(jdk, "bin", "java").exists():
        raise RealNodeError(f"OpenSearch {version} needs the JDK at {jdk}, which is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENSEARCH_", "ES_"))}
    env.update(JAVA_HOME=jdk, OPENSEARCH_JAVA_HOME=jdk)
    return env


def assemble(version: str = recipe.DEFAULT_VERSION) -> Path:
    """A runnable OpenSearch home for ``version`` with the four plugins installed; cached."""
    home = home_dir(version)
    marker = home / ".oskit-assembled"
    if marker.exists() and marker.read_text().strip() == _RECIPE_ID:
        return home
    dl = fetch(version)
    env = java_env(version)
    build = version_dir(version) / "home.building"
    shutil.rmtree(build, ignore_errors=True)
    unpack = version_dir(version) / "unpack"
    shutil.rmtree(unpack, ignore_errors=True)
    _run(["unzip", "-q", str(dl / f"opensearch-{version}.zip"), "-d", str(unpack)], what="unzipping the server")
    (unpack / f"opensearch-{version}").rename(build)
    shutil.rmtree(unpack)
    for script in (build / "bin").iterdir():
        script.chmod(0o755)
    for module in recipe.MODULES:
        if not (build / "modules" / module.name).exists():
            _build_module(build, module, dl / "modules" / module.name, version)
    pv = recipe.plugin_version(version)
    plugin_env = dict(env, OPENSEARCH_PATH_CONF=str(build / "config"))
    for coord, _ in recipe.PLUGINS:
        z = dl / f"{coord.split(':')[1]}-{pv}.zip"
        _run([str(build / "bin" / "opensearch-plugin"), "install", "--batch", z.as_uri()],
             env=plugin_env, what=f"installing {z.name}")
    listed = _run([str(build / "bin" / "opensearch-plugin"), "list"], env=plugin_env, what="listing plugins").split()
    want = [name for _, name in recipe.PLUGINS]
    if sorted(listed) != sorted(want):
        raise RealNodeError(f"installed plugins are {listed}, expected {want}")
    _add_torch(build, dl / "djl")
    (build / ".oskit-assembled").write_text(_RECIPE_ID + "\n")
    shutil.rmtree(home, ignore_errors=True)
    build.rename(home)
    # The service user reads the home; nothing in it is written at run time (config, data, logs live
    # in each node's own run directory).
    for path in [home, *home.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
    return home
