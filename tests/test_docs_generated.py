"""The figures the README and docs quote are the files the measuring scripts wrote, not copies by hand."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import summary_table  # noqa: E402
import sync_docs  # noqa: E402


def test_every_quoted_block_is_the_file_it_names():
    blocks = [b for page in sync_docs.pages(ROOT) for b in sync_docs.find_blocks(page, page.read_text("utf-8"))]
    # the README's headline table is one of them, so this test cannot pass on pages with no block
    assert any(b.page.name == "README.md" for b in blocks)
    assert sync_docs.sync(ROOT, check=True) == []
    for b in blocks:
        assert "scripts/" in b.command, f"{b.page}: the block quoting {b.source} does not name its command"


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tmp_path / "README.md").write_text(
        "# x\n\n<!-- generated: results/t.md (python scripts/make_t.py --markdown results/t.md) -->\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n<!-- end generated: results/t.md -->\n\ntail\n")
    return tmp_path


def test_a_hand_edited_figure_is_found_and_rewritten(tmp_path):
    root = _tree(tmp_path)
    assert sync_docs.sync(root, check=True) == []
    readme = root / "README.md"
    readme.write_text(readme.read_text().replace("| 1 | 2 |", "| 1 | 3 |"))
    stale = sync_docs.sync(root, check=True)
    assert len(stale) == 1 and "results/t.md" in stale[0] and "make_t.py" in stale[0]
    assert "| 1 | 3 |" in readme.read_text()  # --check changes nothing
    sync_docs.sync(root)
    assert "| 1 | 2 |" in readme.read_text() and readme.read_text().endswith("\n\ntail\n")
    assert sync_docs.sync(root, check=True) == []


def test_the_command_line_check_fails_on_a_stale_block_and_names_it(tmp_path):
    root = _tree(tmp_path)
    (root / "results" / "t.md").write_text("| a | b |\n|---|---|\n| 9 | 9 |\n")  # a new measurement
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_docs.py"), "--check", "--root", str(root)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "README.md" in run.stderr and "results/t.md" in run.stderr


def test_a_block_without_its_end_or_its_file_is_an_error(tmp_path):
    root = _tree(tmp_path)
    readme = root / "README.md"
    text = readme.read_text()
    readme.write_text(text.replace("<!-- end generated: results/t.md -->\n", ""))
    with pytest.raises(ValueError, match="no '<!-- end generated: results/t.md -->'"):
        sync_docs.sync(root, check=True)
    readme.write_text(text)
    shutil.rmtree(root / "results")
    with pytest.raises(FileNotFoundError, match="make_t.py"):
        sync_docs.sync(root, check=True)


def test_summary_table_takes_each_number_from_its_measurement(tmp_path):
    crowd = tmp_path / "crowd.json"
    crowd.write_text(json.dumps({"size": "default", "results": {
        "ours": {"mask_ap50_drawn": 0.7812, "wider_dev": {"easy": 0.8, "medium": 0.75, "hard": 0.5}},
        "yunet": {"mask_ap50_drawn": 0.64, "wider_dev": {"easy": 0.824, "medium": 0.805, "hard": 0.678}}}}))
    fddb = tmp_path / "fddb.json"
    fddb.write_text(json.dumps({"rows": [{"detector": "ours", "fddb_ap50_face_boxes": 0.9527}]}))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rows": [{"name": "YuNet", "seq_ms": 14.0},
                                          {"name": "ours: Detector() as installed", "seq_ms": 35.0}]}))
    out = tmp_path / "summary.md"
    assert summary_table.main(["--crowd", str(crowd), "--fddb", str(fddb), "--bench", str(bench),
                               "--row", "**ours**|ours|ours|ours: Detector() as installed",
                               "--row", "YuNet|yunet||YuNet", "--markdown", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[2] == "| **ours** | 0.953 | 78.1 | 80.0 / 75.0 / 50.0 | 35.0 (2.50×) |"
    assert lines[3] == "| YuNet | – | 64.0 | 82.4 / 80.5 / 67.8 | 14.0 (1.00×) |"
    with pytest.raises(SystemExit):
        summary_table.main(["--row", "only-a-label"])


def test_summary_table_picks_a_measurement_by_its_input_size(tmp_path):
    files = []
    for size, ap in (("original", 0.57), (640, 0.78)):
        f = tmp_path / f"crowd_{size}.json"
        f.write_text(json.dumps({"size": size, "results": {"crowd": {
            "mask_ap50_drawn": ap, "mask_recall": {"<16": 0.5, "16-32": 0.8, "32-64": 0.86, ">64": 0.95}}}}))
        files += ["--crowd", str(f)]
    fddb = tmp_path / "fddb.json"
    fddb.write_text(json.dumps({"size": 640, "rows": [{"detector": "crowd", "fddb_ap50_face_boxes": 0.95,
                                                       "fddb_tpr_at_100fp": 0.94, "recall_w0-40": 0.55}]}))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rows": [{"name": "big", "seq_ms": 40.0, "network_input": "853x640"}]}))
    out = tmp_path / "sizes.md"
    assert summary_table.main([*files, "--fddb", str(fddb), "--bench", str(bench), "--layout", "sizes",
                               "--row", "640|crowd@640|crowd@640|big", "--row", "original|crowd@original||",
                               "--markdown", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].count("|") == 10  # nine columns
    assert lines[2] == "| 640 | 853×640 | 0.950 | 0.940 | 0.550 | 78.0 | 0.50 / 0.80 / 0.86 / 0.95 | – | 40.0 |"
    assert lines[3].startswith("| original | – | – | – | – | 57.0 |")


def test_fddb_sizes_layout_puts_each_size_in_its_column(tmp_path):
    files = []
    for size, ap in (("original", 0.925), (480, 0.936), (640, 0.953)):
        f = tmp_path / f"fddb_{size}.json"
        f.write_text(json.dumps({"size": size, "rows": [{"detector": "m", "fddb_ap50_face_boxes": ap,
                                                          "fddb_tpr_at_100fp": ap - 0.01}]}))
        files += ["--fddb", str(f)]
    out = tmp_path / "t.md"
    assert summary_table.main([*files, "--layout", "fddb-sizes", "--row", "model||m|", "--row", "absent||x|",
                               "--markdown", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[2] == "| model | 0.925 / 0.915 | 0.936 / 0.926 | 0.953 / 0.943 |"
    assert lines[3] == "| absent | – | – | – |"


def test_tee_stdout_keeps_what_was_printed_as_the_quoted_file(tmp_path, capsys):
    from markdown_report import tee_stdout

    out = tmp_path / "report.md"
    with tee_stdout(out, lstrip="# "):
        print("# bench: 12 photos\n")
        print("| a |\n|---|\n| 1 |")
    assert capsys.readouterr().out == "# bench: 12 photos\n\n| a |\n|---|\n| 1 |\n"
    assert out.read_text() == "bench: 12 photos\n\n| a |\n|---|\n| 1 |\n"
    with tee_stdout(None):
        print("only printed")
    assert capsys.readouterr().out == "only printed\n" and out.read_text().startswith("bench")


def test_anonymize_tables_take_each_number_from_the_measurement_and_bold_the_defaults():
    """measure_anonymize_defaults.py --markdown: the three tables docs/anonymize.md quotes, from
    its results (here a small made-up set), with the package's defaults in bold."""
    import measure_anonymize_defaults as m

    results = {
        "threshold": [{"threshold": t, "masked all": 0.5 + t, "masked <20px": 0.25, "masked >=20px": 0.75,
                       "regions on no face per image": 2 * t} for t in (0.5, 0.2)],
        "threshold_fddb": [{"threshold": t, "detected (IoU >= 0.3)": 0.9, "regions on no face per image": t}
                           for t in (0.5, 0.2)],
        "scale_fddb": [{"shape": sh, "scale": s, "ellipse covered": s / 2} for sh in ("ellipse", "box")
                       for s in (1.4, 1.5)],
        "scale_faces_mask": [{"shape": sh, "scale": s, "head box covered": s / 4} for sh in ("ellipse", "box")
                             for s in (1.4, 1.5)],
        "strength": [{"method": "blur", "value": 1 / 6, "still found": 0.153, "faces": 516},
                     {"method": "blur", "value": 1 / 8, "still found": 0.24, "faces": 516},
                     {"method": "pixelate", "value": 8, "still found": 0.331, "faces": 516},
                     {"method": "solid", "value": None, "still found": 0.0, "faces": 516}],
    }
    tables = m.markdown_tables(results)
    assert sorted(tables) == ["anonymize_scale.md", "anonymize_strength.md", "anonymize_threshold.md"]
    threshold = tables["anonymize_threshold.md"].splitlines()
    assert threshold[2] == "| 0.5 | 90.0 % | 0.50 | 100.0 % | 25.0 % | 75.0 % | 1.00 |"
    assert threshold[3] == "| **0.2** | **90.0 %** | **0.20** | **70.0 %** | **25.0 %** | **75.0 %** | **0.40** |"
    scale = tables["anonymize_scale.md"].splitlines()
    assert scale[2] == "| 1.4 | 70.0 % | 70.0 % | 35.0 % | 35.0 % |" and scale[3].startswith("| **1.5** | **75.0 %**")
    strength = tables["anonymize_strength.md"].splitlines()
    assert strength[0].startswith("| method (516 faces")
    assert strength[2] == "| **blur, sigma 1/6 of the region (default)** | **15.3 %** |"
    assert strength[3] == "| blur, sigma 1/8 of the region | 24.0 % |"
    assert strength[4] == "| **pixelate, 8 blocks (default)** | **33.1 %** |" and strength[5] == "| solid | 0.0 % |"
