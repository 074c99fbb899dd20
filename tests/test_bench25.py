"""`python -m index_tts.bench.compare25` on the tiny models: both models measured on the same text
and audio length (2.5 with half the codes), the table and JSON written."""

import json

import pytest

from index_tts.bench.__main__ import main as bench_main
from index_tts.bench.compare25 import workload_25
from index_tts.bench.workloads import WORKLOADS, Workload


def test_the_25_workload_halves_the_codes_and_keeps_the_text():
    w = workload_25(WORKLOADS["ref5s-100tok"])
    assert w.segments == ((20, 50),) and w.text_ids(500) == WORKLOADS["ref5s-100tok"].text_ids(500)
    with pytest.raises(ValueError, match="must be even"):
        workload_25(Workload("odd", "", 2.0, ((8, 21),)))


def test_the_bench_measures_both_models_on_the_same_audio_length(tiny_model_dir, tiny25_model_dir, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    code = bench_main(["--model", "both", "--model-dir", str(tiny_model_dir), "--model-dir-25", str(tiny25_model_dir),
                       "--workload", "smoke", "--runs", "1", "--warmup", "0", "--device", "cpu", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["codes_25"] == [10, 10]
    a, b = result["2.0"], result["2.5"]
    assert a["audio_s"] == b["audio_s"] > 0  # 20 codes x 1.72 = 10 codes x 2 x 1.72 mel frames per segment
    assert a["stages_s"]["latent"] > 0 and b["stages_s"]["latent"] > 0 and b["stages_s"]["dit"] > 0
    table = capsys.readouterr().out
    assert "| stage | IndexTTS2 | IndexTTS-2.5 | 2.5 / 2.0 |" in table and "| **RTF** |" in table


def test_the_bench_measures_25_alone(tiny25_model_dir, tmp_path, capsys):
    out = tmp_path / "25.json"
    assert bench_main(["--model", "2.5", "--model-dir-25", str(tiny25_model_dir), "--workload", "smoke", "--runs", "1",
                       "--warmup", "0", "--device", "cpu", "--mode", "balanced", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "2.0" not in result and result["2.5"]["audio_s"] > 0 and result["mode"] == "balanced"
    assert "| stage | IndexTTS-2.5 |" in capsys.readouterr().out
