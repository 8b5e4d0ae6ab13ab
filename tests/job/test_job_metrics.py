"""The relevance metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from kit.errors import EvalError, ThresholdMissed
from kit.job.evaluate import (
    EvalReport,
    EvalRow,
    average_precision,
    check_thresholds,
    f1_at_k,
    ks_from,
    mean_average_precision,
    parse_thresholds,
    precision_at_k,
    query_metrics,
    recall_at_k,
)

# ranking: relevant at ranks 1, 3 and 6; 4 positives in the ground truth (one never retrieved)
RANKING = [True, False, True, False, False, True, False, False, False, False]


def test_precision_recall_f1_by_hand() -> None:
    assert precision_at_k(RANKING, 1) == 1.0
    assert precision_at_k(RANKING, 3) == pytest.approx(2 / 3)
    assert precision_at_k(RANKING, 10) == pytest.approx(3 / 10)
    assert recall_at_k(RANKING, 3, 4) == pytest.approx(2 / 4)
    assert recall_at_k(RANKING, 10, 4) == pytest.approx(3 / 4)
    # F1@10 = 2 * 0.3 * 0.75 / (0.3 + 0.75) = 0.45 / 1.05
    assert f1_at_k(RANKING, 10, 4) == pytest.approx(0.45 / 1.05)
    assert f1_at_k([False, False], 2, 1) == 0.0


def test_precision_counts_missing_ranks_as_misses() -> None:
    # only 2 results returned for k=10: P@10 = 1/10, not 1/2
    assert precision_at_k([True, False], 10) == pytest.approx(0.1)


def test_average_precision_divides_by_all_positives() -> None:
    # precisions at relevant ranks: 1/1, 2/3, 3/6 -> sum 2.1667; over 4 positives = 0.541666...
    assert average_precision(RANKING, 4) == pytest.approx((1 + 2 / 3 + 3 / 6) / 4)
    # cut at k=3: ranks 1 and 3 only
    assert average_precision(RANKING, 4, k=3) == pytest.approx((1 + 2 / 3) / 4)
    assert average_precision([False, False, True], 1) == pytest.approx(1 / 3)
    assert average_precision([False] * 5, 2) == 0.0


def test_mean_average_precision() -> None:
    runs = [(RANKING, 4), ([False, True], 1), ([True], 1)]
    expected = ((1 + 2 / 3 + 0.5) / 4 + 0.5 + 1.0) / 3
    assert mean_average_precision(runs) == pytest.approx(expected)
    assert mean_average_precision([]) == 0.0


def test_query_metrics_keys_and_values() -> None:
    m = query_metrics(RANKING, 4, [3, 10])
    assert set(m) == {"R@1", "P@3", "R@3", "F1@3", "AP@3", "P@10", "R@10", "F1@10", "AP@10"}
    assert m["R@1"] == pytest.approx(0.25)
    assert m["AP@10"] == pytest.approx((1 + 2 / 3 + 0.5) / 4)


def test_metric_input_errors() -> None:
    with pytest.raises(EvalError):
        precision_at_k(RANKING, 0)
    with pytest.raises(EvalError):
        recall_at_k(RANKING, 3, 0)
    with pytest.raises(EvalError):
        ks_from("ten")
    assert ks_from("30,10,10") == [10, 30]


def _report() -> EvalReport:
    rows = [
        EvalRow("vector", "vector", "text+ocr", 5, {"R@1": 0.9, "mAP@10": 0.6, "mAP@30": 0.62, "P@10": 0.3}),
        EvalRow("tags", "tags", "text+ocr", 5, {"R@1": 0.2, "mAP@10": 0.3, "mAP@30": 0.31, "P@10": 0.1}),
        EvalRow("vector", "vector", "image", 2, {"R@1": 1.0, "mAP@10": 1.0, "mAP@30": 1.0, "P@10": 0.1}),
    ]
    return EvalReport(ks=[10, 30], rows=rows, per_query=[], primary="vector")


def test_thresholds_parse_and_check() -> None:
    ts = parse_thresholds(["map=0.5", "tags:p@10=0.05", "image:r@1=0.95"], [10, 30])
    assert [(t.metric, t.mode, t.group, t.value) for t in ts] == [
        ("mAP@30", None, "text+ocr", 0.5), ("P@10", "tags", "text+ocr", 0.05), ("R@1", None, "image", 0.95)]
    passed = check_thresholds(_report(), ts)
    assert passed[0] == "vector text+ocr mAP@30 = 0.6200 (threshold 0.5)"


def test_thresholds_missed_lists_every_miss() -> None:
    ts = parse_thresholds(["map=0.7", "tags:map@10=0.4", "p@10=0.2"], [10, 30])
    with pytest.raises(ThresholdMissed) as exc:
        check_thresholds(_report(), ts)
    msg = str(exc.value)
    assert "vector text+ocr mAP@30 = 0.6200 (threshold 0.7)" in msg
    assert "tags text+ocr mAP@10 = 0.3000 (threshold 0.4)" in msg
    assert " P@10 " not in msg  # that one passed


@pytest.mark.parametrize("bad", ["map", "map=x", "nope=0.5", "vector:map@5=0.5", "sideways:map=0.1"])
def test_bad_thresholds(bad: str) -> None:
    with pytest.raises(EvalError):
        parse_thresholds([bad], [10, 30])


def test_no_nan_in_metrics() -> None:
    m = query_metrics([], 3, [10])
    assert all(not math.isnan(v) for v in m.values())
    assert m["P@10"] == 0.0 and m["AP@10"] == 0.0
