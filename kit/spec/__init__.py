"""The OpenSearch REST API specification: load it, find operations, validate requests and responses.

The spec (``opensearch-project/opensearch-api-specification``) is a folder of OpenAPI 3.1 YAML files
with ``$ref`` links across files (``spec/namespaces/*.yaml`` hold the operations, ``spec/schemas/*.yaml``
the data types). :func:`load_spec` merges them into one document the way the upstream merger does
(``tools/src/merger/OpenApiMerger.ts``) and then makes the schemas *strict* the way the upstream test
tool does (``tools/src/tester/MergedOpenApiSpec.ts``): object schemas get
``unevaluatedProperties: false`` where they are used, so a misspelt or unknown field is an error.
Optionally, the document is cut down to what one server version and distribution serve
(``OpenApiVersionExtractor.ts``).

Validation is jsonschema's Draft 2020-12 with two changes that keep its verdicts and make it fast on
the spec's large unions (:mod:`kit.spec.validator`): a ``oneOf``/``anyOf`` tries only the branches
whose ``type``, ``required`` keys and string ``enum``/``const`` properties admit the instance, and
validity of a (schema node, instance) pair is memoised during one validation.

The spec has a few known gaps: fields and processors that real OpenSearch accepts and the spec does not
declare (see the spec folder's README). :data:`ALLOW_LIST` patches exactly those into the spec before
validation, each with its reason; a test fails when the upstream spec gains an entry, so the list
stays short. Conformance runs use the spec as published (``allow_list=False``).

Modules: :mod:`~kit.spec.load` (``load_spec`` and its caches), :mod:`~kit.spec.document` (read, merge, cut
to a version, make strict), :mod:`~kit.spec.allow_list`, :mod:`~kit.spec.versions` (version ranges),
:mod:`~kit.spec.model` (``Spec``, ``Operation``, ``Parameter``), :mod:`~kit.spec.validator` (fast
strict validation). Every name ``kit.spec`` had before the split is still importable from it.

Example::

    spec = load_spec(Path("../shared/opensearch-api-spec"))
    op = spec.find_operation("PUT", "/_ingest/pipeline/images")      # ingest.put_pipeline
    problems = spec.validate_request("PUT", "/_ingest/pipeline/images", body={...})
"""

from __future__ import annotations

# "name as name": explicit re-exports (mypy --strict); the private ones are imported from here by
# kit/node/conformance.py and tests/test_spec.py.
from kit.spec.allow_list import ALLOW_LIST as ALLOW_LIST
from kit.spec.allow_list import AllowListEntry as AllowListEntry
from kit.spec.allow_list import allow_list_still_needed as allow_list_still_needed
from kit.spec.allow_list import allow_list_target as allow_list_target
from kit.spec.document import HTTP_METHODS as HTTP_METHODS
from kit.spec.document import _spec_root as _spec_root
from kit.spec.document import _yaml_load as _yaml_load
from kit.spec.load import _default_cache_dir as _default_cache_dir
from kit.spec.load import _load_cached as _load_cached
from kit.spec.load import load_raw_files as load_raw_files
from kit.spec.load import load_spec as load_spec
from kit.spec.model import SPEC_URI as SPEC_URI
from kit.spec.model import Operation as Operation
from kit.spec.model import Parameter as Parameter
from kit.spec.model import Spec as Spec
from kit.spec.validator import _memoised as _memoised
from kit.spec.validator import fast_validator_class as fast_validator_class
from kit.spec.versions import satisfies as satisfies

__all__ = [
    "ALLOW_LIST",
    "DEFAULT_DISTRIBUTION",
    "AllowListEntry",
    "Operation",
    "Parameter",
    "Spec",
    "load_spec",
    "satisfies",
]

DEFAULT_DISTRIBUTION = "opensearch.org"
