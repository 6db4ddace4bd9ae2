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


def test_cited_rows_sit_beside_this_studys_rows_and_say_so(runs, tmp_path):
    cited = tmp_path / "published.csv"
    cited.write_text("# Someone et al. (2024), Table 4.\nrow,column,UA,WA,macro_F1,source\n"
                     "paper model,iemocap,71.5,72.0,70.9,\"Someone (2024), Table 4\"\n"
                     "paper model everywhere,,50.0,,,\"Other (2023)\"\n")
    table = build_table(runs, row=lambda r: r.config["model"]["name"], column=lambda r: r.dataset, cited=[cited])
    assert table.rows == ["fused", "speech", "paper model", "paper model everywhere"]  # ours first
    assert (table.source("fused") == "this study (5 runs)"
            and table.source("paper model") == "cited: Someone (2024), Table 4")
    text = to_markdown(table)
    assert "| paper model | 71.50 | 72.00 | 70.90 | – | – | – | cited: Someone (2024), Table 4 |" in text
    assert "| paper model everywhere | 50.00 | – | – | 50.00 | – | – | cited: Other (2023) |" in text
    assert "- Someone et al. (2024), Table 4." in text and "not reproduced by this study" in text
    rows = to_csv(table).splitlines()
    assert "paper model,iemocap,UA,71.5000,,,,\"cited: Someone (2024), Table 4\"" in rows
    assert any(r.startswith("fused,iemocap,UA,64.0000,4.0000,3,,this study") for r in rows)
    assert "cited: Someone" in to_latex(table)


@pytest.mark.parametrize("content, problem", [
    ("row,column,UA,source\nx,d,seventy,s\n", "UA must be a number"),
    ("row,column,UA,source\nx,d,170,s\n", "is not a percentage"),
    ("row,column,UA,source\n,d,70,s\n", "needs 'row' and 'source'"),
])
def test_bad_cited_files_name_file_and_line(tmp_path, content, problem):
    from mmemo.evaluation.tables import load_cited

    path = tmp_path / "cited.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"cited.csv:2: .*{problem}"):
        load_cited(path)


def test_table_chart_draws_ours_and_cited_rows(runs, tmp_path):
    from mmemo.evaluation.plots import table_chart

    cited = tmp_path / "published.csv"
    cited.write_text("row,column,UA,source\npaper model,iemocap,71.5,paper\n")
    table = build_table([r for r in runs if r.dataset == "iemocap"], row=lambda r: r.config["model"]["name"],
                        column=lambda r: r.dataset, cited=[cited])
    path = table_chart(table, tmp_path / "chart.png", chance=25.0)
    assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"
