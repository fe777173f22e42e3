"""Classification figures shared by the benchmarks and `docent eval` (positive class = 1)."""

from __future__ import annotations

from collections import Counter
from typing import Sequence


def token_f1(prediction: Counter, reference: Counter) -> float:
    """F1 of two bags of words (SQuAD's answer measure; callers choose the words): 0.0 when
    either is empty."""
    common = sum((prediction & reference).values())
    if not common:
        return 0.0
    precision, recall_ = common / sum(prediction.values()), common / sum(reference.values())
    return 2 * precision * recall_ / (precision + recall_)


def confusion(truth: Sequence[int], predicted: Sequence[int]) -> tuple[int, int, int, int]:
    tp = sum(1 for t, p in zip(truth, predicted) if t and p)
    fp = sum(1 for t, p in zip(truth, predicted) if not t and p)
    fn = sum(1 for t, p in zip(truth, predicted) if t and not p)
    tn = sum(1 for t, p in zip(truth, predicted) if not t and not p)
    return tp, fp, fn, tn


def balanced_accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    tp, fp, fn, tn = confusion(truth, predicted)
    recall = tp / (tp + fn) if tp + fn else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    return (recall + specificity) / 2


def f1(truth: Sequence[int], predicted: Sequence[int]) -> float:
    tp, fp, fn, _ = confusion(truth, predicted)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def recall(truth: Sequence[int], predicted: Sequence[int]) -> float:
    tp, _, fn, _ = confusion(truth, predicted)
    return tp / (tp + fn) if tp + fn else 0.0


def auroc(truth: Sequence[int], scores: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    ranked = sorted(zip(scores, truth))
    positives = sum(truth)
    negatives = len(truth) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2
        rank_sum += average_rank * sum(t for _, t in ranked[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def best_threshold(truth: Sequence[int], scores: Sequence[float]) -> float:
    """The score cut (predict 1 when score >= cut) with the best balanced accuracy, put
    halfway to the next lower score so that rounding it keeps the same split."""
    cuts = sorted(set(scores))
    if not cuts:
        return 0.5
    best = max(range(len(cuts)), key=lambda i: balanced_accuracy(truth, [s >= cuts[i] for s in scores]))
    return (cuts[best] + cuts[best - 1]) / 2 if best > 0 else cuts[best]
