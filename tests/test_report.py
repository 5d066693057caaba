"""Report: self-contained HTML with the ranking table, figures and training summary."""

import base64
import re

import pandas as pd

from debatch.report import metrics_table, render

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def entry(tmp_path, method, correction, accuracy):
    figure = tmp_path / f"{method}_{correction}.png"
    figure.write_bytes(PNG)
    metrics = {"batch_classifier": {"accuracy": accuracy, "chance": 0.33}, "silhouette_batch": 0.1,
               "silhouette_treatment": None, "n_wells": 48}
    return {"method": method, "correction": correction, "metrics": metrics, "figure": str(figure)}


def test_ranking_puts_least_batch_readable_first(tmp_path):
    table = metrics_table([entry(tmp_path, "erm", "none", 0.9), entry(tmp_path, "erm", "sphering", 0.4)])
    assert table["correction"].tolist() == ["sphering", "none"]


def test_html_embeds_every_figure_and_training_table(tmp_path):
    log = tmp_path / "training_log.tsv"
    pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "train_acc": [0.3, 0.6], "holdout_acc": [0.2, 0.5],
                  "crops_per_s": [900.0, 1000.0], "seconds": [1.0, 1.0]}).to_csv(log, sep="\t", index=False)
    html = render([entry(tmp_path, "erm", "none", 0.9), entry(tmp_path, "erm", "sphering", 0.4)],
                  "My <screen>", [("illum plate01", str(tmp_path / "erm_none.png"))], {"erm": str(log)})
    assert html.count('src="data:image/png;base64,') == 3
    assert "My &lt;screen&gt;" in html  # escaped, never raw markup from config
    training = re.search(r"<table id='training'>(.*?)</table>", html).group(1)
    assert "0.500" in training and "n/a" not in training
    assert "n/a" in html  # undefined silhouette shown, not crashed
