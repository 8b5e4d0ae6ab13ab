"""``kit.job.evaluate.evaluate`` over a recording client: every mode's request shape, groups, per-query kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kit.errors import NotFound
from kit.job.evaluate import default_configs, evaluate, load_queries
from kit.job.search import forget_index_info

PIPELINE = {"request_processors": [{"neural_query_enricher": {"default_model_id": "m"}}],
            "phase_results_processors": [{"normalization-processor": {"normalization": {"technique": "min_max"}}}]}


class Ranker:
    """Ranks the relevant image first for hybrid, second for vector, and not at all for tags."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: Any = None, params: Any = None, **_: Any) -> dict[str, Any]:
        if path.startswith("/_alias/"):  # searches resolve an alias first: "images" is an index here
            raise NotFound(f"alias [{path[8:]}] missing")
        if path == "/images":
            return {"images": {"mappings": {"properties": {}},
                               "settings": {"index": {"search": {"default_pipeline": "p"}}}}}
        if path.startswith("/_search/pipeline/"):
            return {"p": PIPELINE}
        if path.endswith("/_count"):
            return {"count": 3}
        if "ids" in str(body["query"]):  # the ground-truth check: every relevant name is a document
            names = body["query"]["bool"]["should"][1]["terms"]["file_name"]
            return {"hits": {"hits": [{"_id": f"id-{n}", "_source": {"file_name": f"{n}.png"}} for n in names]}}
        self.bodies.append(body)
        query = body["query"]
        text = (query.get("hybrid", {}).get("queries", [query])[-1].get("neural") or {})
        target = next(iter(text.values()))["query_text"].split()[-1] if text else None
        hit = {"_id": f"id-{target}", "_score": 1.0, "_source": {"file_name": f"{target}.png"}}
        other = {"_id": "id-x", "_score": 0.5, "_source": {"file_name": "x.png"}}
        hits = [] if "hybrid" not in query and "neural" not in query else \
            [hit, other] if "hybrid" in query else [other, hit]
        return {"hits": {"hits": hits}}


def test_evaluate_compares_modes_by_group_and_keeps_kinds(tmp_path: Path) -> None:
    qfile = tmp_path / "q.yaml"
    qfile.write_text(yaml.safe_dump({"queries": [
        {"id": "a", "type": "text", "kind": "sign", "text": "STOP", "relevant": ["STOP"]},
        {"id": "b", "type": "text", "kind": "caption", "text": "a red circle", "relevant": ["circle"]},
        {"id": "c", "type": "ocr", "text": "SN 11", "relevant": ["11"]},
    ]}))
    client = Ranker()
    try:
        report = evaluate(client, load_queries(qfile), configs=default_configs(), ks=(1, 10))
    finally:
        forget_index_info(client)
    assert [(r.config, r.group) for r in report.rows if r.group == "text+ocr"] == [
        ("vector", "text+ocr"), ("vector (no template)", "text+ocr"), ("hybrid", "text+ocr"),
        ("hybrid (no template)", "text+ocr"), ("tags", "text+ocr")]
    for group in ("text", "ocr", "text+ocr"):
        assert report.row("hybrid", group).metrics["mAP@10"] == 1.0
        assert report.row("vector", group).metrics["mAP@10"] == 0.5
        assert report.row("tags", group).metrics["mAP@10"] == 0.0
    assert {q["id"]: q["kind"] for q in report.per_query if q["config"] == "hybrid"} == \
        {"a": "sign", "b": "caption", "c": None}
    hybrid = [b for b in client.bodies if "hybrid" in b["query"]]
    # every hybrid request carries its field's weights in a temporary pipeline
    weights = [b["search_pipeline"]["phase_results_processors"][0]["normalization-processor"]["combination"]
               ["parameters"]["weights"] for b in hybrid]
    assert weights == [[0.4, 0.6], [0.4, 0.6], [0.5, 0.5]] * 2
