"""Tables from run folders: numeric mean ± std, and missing folds flagged, never averaged away."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mmemo.evaluation.tables import build_table, load_runs, to_csv, to_latex, to_markdown, write_table


def _run(root: Path, model: str, dataset: str, fold: int, seed: int, ua: float, wa: float) -> None:
    folder = root / model / dataset / f"fold{fold}" / f"seed{seed}"
    folder.mkdir(parents=True)
    data = {"test": {"UA": ua, "WA": wa, "macro_F1": ua - 0.01},
            "meta": {"fold": fold, "seed": seed, "dataset": dataset, "config": {"model": {"name": model}}}}
    (folder / "metrics.json").write_text(json.dumps(data))


@pytest.fixture
def runs(tmp_path):
    for fold, (ua, wa) in enumerate([(0.60, 0.70), (0.64, 0.72), (0.68, 0.74)], start=1):
        _run(tmp_path, "fused", "iemocap", fold, 1, ua, wa)
        _run(tmp_path, "speech", "iemocap", fold, 1, ua - 0.1, wa - 0.1)
    _run(tmp_path, "fused", "meld", 1, 1, 0.40, 0.55)
    _run(tmp_path, "fused", "meld", 1, 2, 0.44, 0.57)
    _run(tmp_path, "speech", "meld", 1, 1, 0.30, 0.45)  # seed 2 is missing
    return load_runs([tmp_path])


def test_means_and_sample_standard_deviations(runs):
    table = build_table(runs, row=lambda r: r.config["model"]["name"], column=lambda r: r.dataset)
    mean, std = table.cells[("fused", "iemocap")].mean_std("UA")
    assert mean == pytest.approx(64.0) and std == pytest.approx(4.0)  # 60, 64, 68: sample std 4
    mean, std = table.cells[("fused", "meld")].mean_std("WA")
    assert mean == pytest.approx(56.0) and std == pytest.approx(math.sqrt(2.0))
    assert table.cells[("speech", "iemocap")].mean_std("UA")[0] == pytest.approx(54.0)


def test_a_missing_seed_is_flagged_in_every_format(runs, tmp_path):
    table = build_table(runs, row=lambda r: r.config["model"]["name"], column=lambda r: r.dataset)
    assert table.flagged == [("speech", "meld", [(1, 2)])]
    markdown = to_markdown(table)
    assert "30.00 ± 0.00†" in markdown and "† speech / meld: missing fold 1 seed 2" in markdown
    assert r"$^\dagger$" in to_latex(table)
    assert "speech,meld,UA,30.0000,0.0000,1,fold1/seed2" in to_csv(table)
    written = write_table(table, tmp_path / "out", "paper")
    assert [p.name for p in written] == ["paper.md", "paper.tex", "paper.csv"]


def test_duplicate_runs_are_refused(runs, tmp_path):
    with pytest.raises(ValueError, match="two runs for"):
        build_table(runs + runs[:1], row=lambda r: r.config["model"]["name"], column=lambda r: r.dataset)


def test_table_command_writes_files_and_flags_the_gap(runs, tmp_path, capsys):
    from mmemo.cli import main

    root = runs[0].folder.parents[3]
    main(["table", str(root), "--rows", "model.name", "--columns", "dataset", "--out", str(tmp_path / "t"),
          "--name", "paper"])
    printed = capsys.readouterr().out
    assert "| fused | 64.00 ± 4.00 | 72.00 ± 2.00 | 63.00 ± 4.00 | 42.00 ± 2.83 |" in printed
    assert "† speech / meld: missing fold 1 seed 2" in (tmp_path / "t" / "paper.md").read_text()


def test_runs_can_come_from_a_wandb_project():
    from mmemo.evaluation.wandb_runs import load_wandb_runs

    class Remote:
        def __init__(self, fold, ua):
            self.summary = {"test/UA": ua, "test/WA": ua + 0.1, "test/macro_F1": ua, "val/UA": 0.9}
            self.config = {"data": {"fold": fold, "name": "iemocap"}, "seed": 1, "model": {"speech": {"name": "e2v"}}}
            self.path = ["me", "mmemo", f"run{fold}"]

    class Api:
        def runs(self, project, filters):
            assert project == "me/mmemo"
            return [Remote(1, 0.7), Remote(2, 0.8), type("Unfinished", (), {"summary": {}, "config": {}, "path": []})()]

    runs = load_wandb_runs("me/mmemo", api=Api())
    assert [r.fold for r in runs] == [1, 2] and runs[0].dataset == "iemocap"
    table = build_table(runs, row=lambda r: r.config["model"]["speech"]["name"], column=lambda r: r.dataset)
    assert table.cells[("e2v", "iemocap")].mean_std("UA")[0] == pytest.approx(75.0)
