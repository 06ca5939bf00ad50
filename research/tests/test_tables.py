"""research.tables: the published tables follow the evidence files, and docs/results.md holds exactly them."""
import csv
import subprocess
import sys
from pathlib import Path

from research import tables

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])


def test_budget_rows_give_means_deltas_the_bar_and_paired_seeds(tmp_path):
    rows = [["s", 10, "supervised", 0, 0.40], ["s", 10, "supervised", 1, 0.50], ["s", 10, "supervised", 2, 0.45],
            ["s", 10, "s4l", 0, 0.60], ["s", 10, "s4l", 1, 0.62], ["s", 10, "s4l", 3, 0.61]]
    _write(tmp_path / "label_budget.csv", ["setting", "labels_pct", "arm", "seed", "mean_balanced_accuracy"], rows)
    line = tables.label_budget(tmp_path).splitlines()[2]
    # means 45.0 vs 61.0 (+16.0 > the larger std 5.0); paired only on seeds 0 and 1: +20, +12
    assert line == ("| s | 10 % | 45.0 ± 5.0 (n=3) | 61.0 ± 1.0 (n=3) | +16.0 | yes | 16.0 ± 5.7 (n=2) | 2 of 2 |")


def test_a_delta_that_rounds_to_zero_has_no_sign_of_its_own():
    assert tables._delta([0.5], [0.5004]) == "+0.0"


def test_the_doc_check_fails_on_a_changed_figure_and_write_repairs_it(tmp_path):
    doc = tmp_path / "doc.md"
    original = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    assert "| 57.3 ± 6.1 (n=5) |" in original
    doc.write_text(original.replace("| 57.3 ± 6.1 (n=5) |", "| 57.4 ± 6.1 (n=5) |", 1), encoding="utf-8")
    assert tables.main([str(REPO / "docs" / "evidence"), "--check", str(doc)]) == 1
    assert tables.main([str(REPO / "docs" / "evidence"), "--write", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == original


def test_docs_results_tables_are_regenerated_byte_identical_from_the_evidence():
    proc = subprocess.run([sys.executable, "-m", "research.tables", "docs/evidence", "--check", "docs/results.md"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "tables identical" in proc.stdout


def test_the_evidence_stays_compact():
    assert sum(p.stat().st_size for p in (REPO / "docs" / "evidence").iterdir()) < 1_000_000
