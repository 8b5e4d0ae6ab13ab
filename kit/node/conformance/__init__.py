"""Run the official OpenSearch API test stories against a node: ``oskit node conformance``.

The stories live in ``opensearch-api-specification/tests`` (vendored in ``../shared/opensearch-api-spec``).
This module evaluates them the way the upstream TypeScript tester does (``tools/src/tester``):

- a story is skipped when its ``distributions`` or ``version`` range excludes the server
  (``StoryEvaluator.evaluate``); chapters have the same filters, and ``pending`` chapters are ignored;
- prologues and epilogues check only the status (default ``[200, 201]``) and an optional expected
  payload (``SupplementalChapterEvaluator``);
- chapters are also checked against the spec: the operation must exist for the path template,
  every parameter and the request body must validate, the response must have the expected status,
  content type and a body that validates strictly (``ChapterEvaluator``);
- expected payloads are a subset match with json-diff-ts 4.0.1 semantics (``ResponsePayloadEvaluator``):
  missing or different values fail, extra keys and extra array items pass, a type change fails;
- ``output`` saves ``payload.<lodash path>`` values that later chapters read as ``${id.name}``; a
  string that is exactly one reference keeps the value's type (``OutputReference``);
- ``retry: {count, wait}`` re-runs a chapter until it passes (``wait`` ms between tries, default 1000);
- after a prologue fails, chapters are skipped; after a chapter errors, later chapters are skipped;
  epilogues always run.

On top of upstream, a committed skip list (``skips.yaml``: story path -> reason) names the
stories not run and why. The library never prints: results come back as :class:`ConformanceReport` and
through an optional ``progress`` callback.
"""

from kit.node.conformance.cli import conformance_command
from kit.node.conformance.mirror import MIRRORED_MODELS, build_mirror_package, mirror_package_key, prepare_offline_mirror
from kit.node.conformance.results import ChapterResult, ConformanceReport, Evaluation, Result, StoryResult
from kit.node.conformance.runner import (
    DEFAULT_SKIPS_FILE,
    SUITES,
    default_spec_dir,
    discover_stories,
    load_skip_list,
    run_conformance,
    skip_reason,
)
from kit.node.conformance.stories import StoryContext, _check_story_variables, run_story  # noqa: F401 (tests)
from kit.node.conformance.transport import HttpTransport, Response
from kit.node.conformance.values import _UNDEFINED, StoryOutputs, lodash_get, payload_differences  # noqa: F401 (tests)

__all__ = [
    "DEFAULT_SKIPS_FILE",
    "MIRRORED_MODELS",
    "SUITES",
    "ChapterResult",
    "ConformanceReport",
    "Evaluation",
    "HttpTransport",
    "Response",
    "Result",
    "StoryContext",
    "StoryOutputs",
    "StoryResult",
    "build_mirror_package",
    "conformance_command",
    "default_spec_dir",
    "discover_stories",
    "load_skip_list",
    "lodash_get",
    "mirror_package_key",
    "payload_differences",
    "prepare_offline_mirror",
    "run_conformance",
    "run_story",
    "skip_reason",
]
