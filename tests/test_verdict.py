"""The report's first paragraph says only what the run supports: provisional below three seeds,
two answers when the two jobs disagree, Harmony kept out of the matching answer."""

import numpy as np

from debatch.evaluate.compare import ranking
from debatch.evaluate.verdict import headline

from builders import metrics_entry

TREATMENTS = [f"cpd{i}" for i in range(8)]


def row(method, correction, seed, accuracy, ap, overall, activity, rng):
    """A metrics entry whose treatments have the given activity mAP (per treatment, noisy) and
    are called active above an mAP of 0.5; its activity score is the mean of the two."""
    entry = metrics_entry(method, seed, correction, accuracy, ap, overall, rng, activity=activity)
    maps = np.clip(rng.normal(activity, 0.02, len(TREATMENTS)), 0, 1)
    called = maps > 0.5
    entry["per_treatment"] = [
        {"Metadata_Treatment": t, "mean_average_precision": float(v), "below_corrected_p": bool(c)}
        for t, v, c in zip(TREATMENTS, maps, called)
    ]
    entry["bio"]["map"]["value"] = float(maps.mean())
    entry["bio"]["fraction_retrieved"] = {
        "value": called.mean(),
        "treatments": 8,
        "threshold": 0.05,
    }
    entry["scores"]["activity"] = float((maps.mean() + called.mean()) / 2)
    return {"correction": correction, "metrics": entry}


def screen(seeds, spec):
    """spec: (method, correction) -> (held-out accuracy, held-out AP, overall, activity)."""
    rng = np.random.default_rng(0)
    return [
        row(method, correction, k, *values, rng)
        for (method, correction), values in spec.items()
        for k in seeds
    ]


SPEC = {
    ("hits", "none"): (0.5, 0.5, 0.70, 0.9),  # best at calling actives, weak across batches
    ("travels", "none"): (0.9, 0.8, 0.65, 0.6),  # best at matching across batches
    ("travels", "harmony"): (1.0, 1.0, 0.60, 0.5),  # better still, but fitted on held-out wells
}


def paragraph(entries):
    table = ranking(entries, n_boot=300)
    return " ".join(headline(table, entries, n_boot=300)), table


def test_one_seed_is_provisional_and_names_how_to_run_more():
    text, _ = paragraph(screen([0], SPEC))
    assert text.startswith("Provisional: trained methods ran with 1 seed")
    assert "make demo-seeds" in text and "train.seeds" in text
    assert "Use " not in text


def test_three_seeds_say_use_and_give_one_answer_per_job():
    text, table = paragraph(screen([0, 1, 2], SPEC))
    assert table.loc[0, "method"] == "hits"
    assert text.startswith("Use hits + none:")
    assert "To call active treatments against negcon: hits + none (activity" in text
    assert "ahead of travels + none by" in text and ": real)" in text
    # the matching answer skips the Harmony row although its held-out score is higher
    assert "To match treatments across batches (rows with harmony left out" in text
    assert "left out: fitted with the held-out wells): travels + none" in text


def test_one_row_best_at_both_jobs_is_said_once():
    spec = {("both", "none"): (0.9, 0.8, 0.7, 0.9), ("other", "none"): (0.5, 0.5, 0.6, 0.6)}
    text, _ = paragraph(screen([0, 1, 2], spec))
    assert "both + none is best at both jobs" in text and "To call" not in text


def test_without_held_out_batches_matching_is_leave_one_batch_out():
    entries = screen([0, 1, 2], SPEC)
    for entry in entries:  # no held-out batch: the consistency job is kNN LOBO's
        metrics = entry["metrics"]
        metrics["holdout"] = {"reason": "no held-out batch configured"}
        metrics["scores"]["generalisation"] = None
        metrics["scores"]["matching"] = 0.9 if metrics["method"] == "travels" else 0.2
    text, _ = paragraph(entries)
    assert "To match treatments across batches" in text and "kNN leave-one-batch-out" in text
    assert "leave-one-batch-out score 0.900" in text
