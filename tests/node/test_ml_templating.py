"""Connector templating pieces, checked against the behaviour of the Java code they reproduce
(commons-text StringSubstitutor, StringEscapeUtils.escapeJson, HttpConnector.fillNullParameters,
StringUtils.parseParameters / isJson / getParameterMap)."""

from __future__ import annotations

import json

import pytest

from kit.node.ml.templating import (
    SubstitutionLoop,
    escape_json,
    fill_null_parameters,
    is_json,
    parameter_map,
    parse_to_string_parameters,
    substitute,
    unfilled_placeholders,
)


def test_substitute_known_unknown_default_and_escape() -> None:
    params = {"a": "1", "b": "${parameters.a}-x"}
    assert substitute("${parameters.a}", params) == "1"
    assert substitute("${parameters.b}", params) == "1-x"  # replaced values are substituted again
    assert substitute("${parameters.nope}", params) == "${parameters.nope}"
    assert substitute("${parameters.nope:-dflt}", params) == "dflt"
    assert substitute("${parameters.a:-dflt}", params) == "1"
    assert substitute("$${parameters.a}", params) == "${parameters.a}"
    assert substitute("${credential.k}", {"k": "s"}, prefix="${credential.") == "s"


def test_substitute_cycle_is_an_error() -> None:
    with pytest.raises(SubstitutionLoop):
        substitute("${parameters.a}", {"a": "${parameters.b}", "b": "${parameters.a}"})


def test_escape_json_matches_commons_text() -> None:
    assert escape_json('say "hi"\n\t/\\') == 'say \\"hi\\"\\n\\t\\/\\\\'
    assert escape_json("é") == "\\u00E9"
    assert escape_json("😀") == "\\uD83D\\uDE00"
    assert json.loads('"' + escape_json('a"b\u0001é') + '"') == 'a"b\u0001é'


def test_fill_null_parameters_only_for_quoted_absent_values() -> None:
    body = '{"t": "${parameters.t:-null}", "i": "${parameters.i:-null}"}'
    out = fill_null_parameters({"t": "x"}, body)
    assert out == '{"t": "${parameters.t:-null}", "i": null}'
    assert substitute(out, {"t": "x"}) == '{"t": "x", "i": null}'


def test_is_json_means_object_or_array() -> None:
    assert is_json('{"a": 1}') and is_json("[1, 2]")
    assert not is_json("1") and not is_json('"s"') and not is_json("null") and not is_json("{oops")


def test_parameter_map_json_encodes_non_strings() -> None:
    assert parameter_map({"s": "x", "n": 2, "l": ["a", "b"], "o": {"k": None}}) == {
        "s": "x", "n": "2", "l": '["a","b"]', "o": '{"k":null}'}


def test_to_string_parameters() -> None:
    params: dict[str, str | None] = {"prompt": "ctx: ${parameters.context.toString()}", "context": 'a "b"'}
    parse_to_string_parameters(params)
    assert params["context.toString()"] == 'a \\"b\\"'
    assert substitute(params["prompt"], params) == 'ctx: a \\"b\\"'


def test_unfilled_placeholders() -> None:
    assert unfilled_placeholders('{"a": "${parameters.x}", "b": ${parameters.y}}') == ["x", "y"]
