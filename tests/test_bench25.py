"""`python -m index_tts.bench.compare25` on the tiny models: both models measured on the same text
and audio length (2.5 with half the codes), the table and JSON written."""

import json

import pytest

from index_tts.bench.compare25 import main as compare_main
from index_tts.bench.compare25 import workload_25
from index_tts.bench.workloads import WORKLOADS, Workload


def test_the_25_workload_halves_the_codes_and_keeps_the_text():
    w = workload_25(WORKLOADS["ref5s-100tok"])
    assert w.segments == ((20, 50),) and w.text_ids(500) == WORKLOADS["ref5s-100tok"].text_ids(500)
    with pytest.raises(ValueError, match="must be even"):
        workload_25(Workload("odd", "", 2.0, ((8, 21),)))


def test_compare25_measures_both_models_on_the_same_audio_length(tiny_model_dir, tiny25_model_dir, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    code = compare_main(["--model-dir", str(tiny_model_dir), "--model-dir-25", str(tiny25_model_dir), "--workload", "smoke",
                         "--runs", "1", "--warmup", "0", "--device", "cpu", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["codes_25"] == [10, 10]
    a, b = result["2.0"], result["2.5"]
    assert a["audio_s"] == b["audio_s"] > 0  # 20 codes x 1.72 = 10 codes x 2 x 1.72 mel frames per segment
    assert a["stages_s"]["latent"] > 0 and b["stages_s"]["latent"] > 0 and b["stages_s"]["dit"] > 0
    assert "| **RTF** |" in capsys.readouterr().out
