"""benchmarks/bench_gpu.py (issue 8's GPU table) runs end to end on the CPU at tiny sizes.

The GPU run itself happens in a session lent a GPU (benchmarks/gpu_check.sh); these tests prove
that the same script, on our paths only (no reference checkout), prints the table with the
expected rows, isolates a failing configuration in its row, honours the time budget, and that
its FLOP/byte census counts what it says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.py"


def _bench(*args: str, tmp_path: Path) -> tuple[str, dict]:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def _table_rows(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| what | configuration | refs |"), text
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]


def test_quick_run_prints_our_rows_with_numbers(tmp_path):
    text, raw = _bench(
        *("--precisions", "float32", "--channels-last", "on", "--no-stylize"),
        *("--peak-tflops", "1", "2", "4", "--peak-gbs", "100"),
        tmp_path=tmp_path,
    )
    assert "### JoJoGAN speed:" in text and "torch " in text and "command: `python" in text
    rows = _table_rows(text)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("fine-tune 32 px (ours)", "float32, channels_last", "1"),
        ("fine-tune 32 px (ours)", "float32, channels_last", "4"),
    ]
    for r in rows:
        assert "failed" not in " ".join(r) and "skipped" not in " ".join(r)
        assert r[3].endswith(")") and " s / step (" in r[3]
        assert "(300 x median)" in r[4]
        assert "FLOP, " in r[7] and r[7].endswith("%") and "B, " in r[8] and r[8].endswith("%")
    assert "memory 4 refs / 1 ref:" in rows[1][9] and "flat <= 1.1: yes" in rows[1][9]
    results = [w["r"] for w in raw["rows"]]
    assert all(x["step_s"] > 0 and x["flops"] > 0 and x["bytes"] > 0 for x in results)
    # the 4-reference step does 4x the generator/discriminator work of the 1-reference step
    assert results[1]["flops"] == pytest.approx(4 * results[0]["flops"], rel=0.05)
    # % of the FLOP floor = FLOPs / (peak fp32 1 TFLOP/s) / step time, as printed
    pct = float(rows[0][7].split(", ")[1].rstrip("%"))
    assert pct == pytest.approx(100 * results[0]["flops"] / 1e12 / results[0]["step_s"], rel=0.05)


def test_a_failing_configuration_is_reported_in_its_row(tmp_path):
    # 48 px is no StyleGAN2 size: the worker fails, the table is still printed
    text, raw = _bench(
        "--sizes",
        "48",
        "--precisions",
        "float32",
        "--channels-last",
        "off",
        "--refs",
        "1",
        "--no-stylize",
        tmp_path=tmp_path,
    )
    rows = _table_rows(text)
    assert len(rows) == 1 and rows[0][3].startswith("failed: ValueError")
    assert "power of two" in rows[0][3]
    assert "error" in raw["rows"][0]["r"]


def test_the_time_budget_skips_rows(tmp_path):
    text, raw = _bench("--budget-s", "0", "--precisions", "bf16", tmp_path=tmp_path)
    rows = _table_rows(text)
    assert len(rows) == 4  # bf16 x (NCHW, channels_last) at 1 ref, 4 refs, stylize
    assert all(r[3].startswith("skipped: time budget") for r in rows)


def test_census_counts_matmul_flops_and_bytes():
    from bench_gpu import _Census

    x = torch.randn(32, 48)
    y = torch.randn(48, 16)
    with _Census() as c:
        z = x @ y  # reads x and y, writes z
        z.t()  # a view: no bytes
        z.add_(1.0)  # in place: reads and writes z
    flops, nbytes = c.snapshot()
    assert flops == 2 * 32 * 48 * 16
    assert nbytes == 4 * (32 * 48 + 48 * 16 + 32 * 16) + 4 * 2 * 32 * 16


def test_census_counts_grouped_convolution_backward_once_per_group():
    from bench_gpu import _Census

    x = torch.randn(1, 4 * 8, 16, 16, requires_grad=True)
    w = torch.randn(4 * 8, 8, 3, 3, requires_grad=True)
    with _Census() as c:
        torch.nn.functional.conv2d(x, w, groups=4, padding=1).sum().backward()
    fwd = 2 * 16 * 16 * (4 * 8) * 8 * 9  # outputs x (out channels) x (in channels per group) x k
    assert c.snapshot()[0] == 3 * fwd  # forward, grad input, grad weight


@pytest.mark.slow
def test_full_quick_run_has_every_row(tmp_path):
    text, _raw = _bench(tmp_path=tmp_path)
    rows = _table_rows(text)
    ours1 = [r for r in rows if r[0].endswith("(ours)") and r[2] == "1"]
    ours4 = [r for r in rows if r[0].endswith("(ours)") and r[2] == "4"]
    styl = [r for r in rows if r[0].startswith("stylize")]
    # 4 references: the fastest 1-reference configuration only (peak memory against count)
    assert len(ours1) == 6 and len(ours4) == 1 and len(styl) == 3 and len(rows) == 10
    assert {r[1] for r in ours1} == {
        f"{p}, {layout}"
        for p in ("float32", "tf32", "bf16")
        for layout in ("NCHW", "channels_last")
    }
    assert not any("failed" in " ".join(r) or "skipped" in " ".join(r) for r in rows)
    for r in styl:
        assert " ms / face (encode " in r[3] and "faces/s encode + generate" in r[4]
        assert "images/s generate alone (batch 2)" in r[4]
        assert "non-finite" not in r[9]
