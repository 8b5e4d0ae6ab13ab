"""Fast strict validation: jsonschema's Draft 2020-12 with discriminating ``oneOf``/``anyOf`` and memoisation.

The spec's big unions (Property: 47 mapping types told apart by ``type``; AggregationContainer: ~60
branches told apart by their one required key) and ``unevaluatedProperties: false`` everywhere make
plain jsonschema exponential in nesting depth: each union tries every branch, and every
``unevaluatedProperties`` re-validates the subtree to learn which keys were evaluated. Two changes keep
the verdicts identical and make it fast:

1. a union only tries the branches that *can* match: a branch whose unconditional constraints (its
   ``type``, its ``required`` keys, a string ``enum``/``const`` on one of its properties, gathered through
   ``$ref`` and ``allOf``) exclude the instance is invalid for sure, exactly as jsonschema would find;
2. validity of (schema node, instance) is memoised for the length of one validation, keyed by the
   schema's identity (one document, so identity is stable) and the instance's canonical JSON.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

__all__ = ["fast_validator_class"]


@dataclass(frozen=True)
class _BranchFacts:
    """What a schema requires of every instance it accepts, whatever else it says."""

    types: frozenset[str] | None = None  # None: any type
    required: frozenset[str] = frozenset()
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)  # property -> allowed strings


class _Memo:
    """Memo tables for one validation (see above)."""

    def __init__(self) -> None:
        self.canon: dict[int, tuple[Any, str]] = {}
        self.valid: dict[tuple[Any, ...], bool] = {}
        self.evaluated: dict[tuple[int, str], frozenset[str]] = {}

    def key(self, instance: Any) -> str:
        if isinstance(instance, (dict, list)):
            hit = self.canon.get(id(instance))
            if hit is not None and hit[0] is instance:
                return hit[1]
            text = _canonical(instance)
            self.canon[id(instance)] = (instance, text)  # keeps the instance alive, so its id stays its own
            return text
        return _canonical(instance)


def _canonical(instance: Any) -> str:
    # JSON text keeps 1, 1.0 and true apart, as jsonschema's enum/const do; odd objects get a repr
    return json.dumps(instance, sort_keys=True, separators=(",", ":"), default=lambda o: f"<{type(o).__name__}:{o!r}>")


_LOCAL = threading.local()
_FACTS: dict[int, tuple[Any, _BranchFacts]] = {}
_FACTS_LOCK = threading.Lock()


@contextlib.contextmanager
def _memoised() -> Iterator[_Memo]:
    """Memo tables for the validations inside the block (nested blocks share the outer tables)."""
    outer = getattr(_LOCAL, "memo", None)
    if outer is not None:
        yield outer
        return
    _LOCAL.memo = memo = _Memo()
    try:
        yield memo
    finally:
        _LOCAL.memo = None


def _memo() -> _Memo:
    memo = getattr(_LOCAL, "memo", None)
    return memo if memo is not None else _Memo()  # outside _memoised(): correct, just not shared


def _string_values(validator: Any, schema: Any) -> frozenset[str] | None:
    """The strings a property schema allows (its ``enum``/``const``), or None when not such a list."""
    for _ in range(16):
        if not isinstance(schema, dict):
            return None
        if "const" in schema:
            return frozenset([schema["const"]]) if isinstance(schema["const"], str) else None
        if "enum" in schema:
            enum = schema["enum"]
            return frozenset(enum) if isinstance(enum, list) and all(isinstance(v, str) for v in enum) else None
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return None
        schema = validator._resolver.lookup(ref).contents
    return None


def _facts(validator: Any, schema: Any, depth: int = 0) -> _BranchFacts:
    """:class:`_BranchFacts` of ``schema``, following ``$ref`` and ``allOf`` (cached per schema node)."""
    if not isinstance(schema, dict) or depth > 24:
        return _BranchFacts()  # knowing less only means trying more branches
    hit = _FACTS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    types: frozenset[str] | None = None
    if isinstance(schema.get("type"), str):
        types = frozenset([schema["type"]])
    elif isinstance(schema.get("type"), list):
        types = frozenset(schema["type"])
    required = frozenset(r for r in schema.get("required") or () if isinstance(r, str))
    values: dict[str, frozenset[str]] = {}
    for name, sub in (schema.get("properties") or {}).items():
        allowed = _string_values(validator, sub)
        if allowed is not None:
            values[name] = allowed
    parts = []
    if isinstance(schema.get("$ref"), str):
        parts.append(validator._resolver.lookup(schema["$ref"]).contents)
    parts += [s for s in schema.get("allOf") or () if isinstance(s, dict)]
    for part in parts:  # every part applies, so their constraints add up
        sub = _facts(validator, part, depth + 1)
        if sub.types is not None:
            types = sub.types if types is None else types & sub.types
        required |= sub.required
        for name, allowed in sub.values.items():
            values[name] = values[name] & allowed if name in values else allowed
    facts = _BranchFacts(types, required, values)
    with _FACTS_LOCK:
        _FACTS[id(schema)] = (schema, facts)
    return facts


def _instance_types(instance: Any) -> frozenset[str]:
    if isinstance(instance, bool):
        return frozenset({"boolean"})
    if isinstance(instance, int):
        return frozenset({"integer", "number"})
    if isinstance(instance, float):
        return frozenset({"integer", "number"}) if instance.is_integer() else frozenset({"number"})
    if isinstance(instance, str):
        return frozenset({"string"})
    if isinstance(instance, dict):
        return frozenset({"object"})
    if isinstance(instance, list):
        return frozenset({"array"})
    if instance is None:
        return frozenset({"null"})
    return frozenset()


def _candidates(validator: Any, branches: list[Any], instance: Any) -> list[tuple[int, Any]]:
    """The branches of a union that may accept ``instance``; every other branch rejects it for sure."""
    kinds = _instance_types(instance)
    out = []
    for index, branch in enumerate(branches):
        facts = _facts(validator, branch)
        if kinds and facts.types is not None and not (facts.types & kinds):
            continue
        if isinstance(instance, dict):
            if not facts.required <= instance.keys():
                continue
            if any(isinstance(instance.get(name), str) and instance[name] not in allowed
                   for name, allowed in facts.values.items()):
                continue
        out.append((index, branch))
    return out


def _valid(validator: Any, instance: Any, schema: Any) -> bool:
    """``validator.descend(instance, schema)`` yields no error (memoised)."""
    if schema is True or schema is False:
        return schema
    memo = _memo()
    key = ("schema", id(schema), memo.key(instance))
    hit = memo.valid.get(key)
    if hit is None:
        hit = next(iter(validator.descend(instance, schema)), None) is None
        memo.valid[key] = hit
    return hit


def _kw_ref(validator: Any, ref: str, instance: Any, schema: Any) -> Iterator[Any]:
    # A "#/..." reference means the same schema wherever it appears (one document without $id).
    memo = _memo()
    key = ("$ref", ref, memo.key(instance)) if ref.startswith("#") else None
    if key is not None and memo.valid.get(key):
        return
    errors = list(validator._validate_reference(ref=ref, instance=instance))
    if key is not None:
        memo.valid[key] = not errors
    yield from errors


def _kw_any_of(validator: Any, any_of: list[Any], instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    all_errors = []
    for index, subschema in _candidates(validator, any_of, instance):
        errs = list(validator.descend(instance, subschema, schema_path=index))
        if not errs:
            return
        all_errors.extend(errs)
    yield ValidationError(f"{instance!r} is not valid under any of the given schemas", context=all_errors)


def _kw_one_of(validator: Any, one_of: list[Any], instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    candidates = iter(_candidates(validator, one_of, instance))
    all_errors = []
    for index, subschema in candidates:
        errs = list(validator.descend(instance, subschema, schema_path=index))
        if not errs:
            first_valid = subschema
            break
        all_errors.extend(errs)
    else:
        yield ValidationError(f"{instance!r} is not valid under any of the given schemas", context=all_errors)
        return
    more_valid = [each for _, each in candidates if _valid(validator, instance, each)]
    if more_valid:
        more_valid.append(first_valid)
        reprs = ", ".join(repr(s) for s in more_valid)
        yield ValidationError(f"{instance!r} is valid under each of {reprs}")


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> frozenset[str]:
    """jsonschema's ``find_evaluated_property_keys_by_schema``, memoised and with discriminating unions."""
    if not isinstance(schema, dict):
        return frozenset()
    memo = _memo()
    key = (id(schema), memo.key(instance))
    hit = memo.evaluated.get(key)
    if hit is not None:
        return hit
    keys: set[str] = set()
    for ref_kw in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_kw)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            keys |= _evaluated_keys(validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                                    instance, resolved.contents)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        sub = schema.get(keyword)
        if sub is not None:
            keys |= {k for k, v in instance.items() if _valid(validator, v, sub)}
    if "patternProperties" in schema:
        keys |= {p for p in instance for pattern in schema["patternProperties"] if re.search(pattern, p)}
    for prop, sub in (schema.get("dependentSchemas") or {}).items():
        if prop in instance:
            keys |= _evaluated_keys(validator, instance, sub)
    for sub in schema.get("allOf") or ():
        if _valid(validator, instance, sub):
            keys |= _evaluated_keys(validator, instance, sub)
    for keyword in ("oneOf", "anyOf"):
        for _, sub in _candidates(validator, schema.get(keyword) or [], instance):
            if _valid(validator, instance, sub):
                keys |= _evaluated_keys(validator, instance, sub)
    if "if" in schema:
        if _valid(validator, instance, schema["if"]):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated_keys(validator, instance, schema["else"])
    out = frozenset(keys)
    memo.evaluated[key] = out
    return out


def _kw_unevaluated_properties(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    bad = [p for p in instance if p not in evaluated
           and next(iter(validator.descend(instance[p], unevaluated, path=p, schema_path=p)), None) is not None]
    if bad:
        if unevaluated is False:
            extras = sorted(bad, key=str)
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Unevaluated properties are not allowed ({', '.join(map(repr, extras))} {verb} unexpected)")
        else:
            verb = "was" if len(bad) == 1 else "were"
            yield ValidationError("Unevaluated properties are not valid under the given schema "
                                  f"({', '.join(map(repr, bad))} {verb} unevaluated and invalid)")


@functools.lru_cache(maxsize=1)
def fast_validator_class() -> Any:
    """Draft 2020-12 with the keywords above; same verdicts as ``Draft202012Validator``, much faster on
    the spec's unions. Validate inside :func:`_memoised` to share the memo across a whole request."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {
        "$ref": _kw_ref, "anyOf": _kw_any_of, "oneOf": _kw_one_of,
        "unevaluatedProperties": _kw_unevaluated_properties,
    })
