"""webui.py's limit flags: parsed into values the service uses, nonsense refused with the flag's name."""

from __future__ import annotations

import pytest

import webui


def test_limit_flags_parse():
    args = webui.parse_args(["--max-queue", "3", "--request-timeout", "30", "--max-upload-mb", "5",
                             "--upload-formats", "wav, flac", "--cors-origin", "https://a.example",
                             "--cors-origin", "https://b.example"])
    assert (args.max_queue, args.request_timeout, args.max_upload_mb) == (3, 30.0, 5.0)
    assert args.upload_formats == ("WAV", "FLAC")
    assert args.cors_origin == ["https://a.example", "https://b.example"]
    defaults = webui.parse_args([])
    assert defaults.cors_origin == [] and defaults.host == "127.0.0.1" and not defaults.fault_injection
    assert defaults.model == "2" and defaults.model_dir_25 is None  # IndexTTS2 stays the default


def test_the_model_flag_and_its_environment_variable(monkeypatch, capsys):
    assert webui.parse_args(["--model", "both", "--model-dir-25", "/m25"]).model_dir_25 == "/m25"
    monkeypatch.setenv("INDEX_TTS_MODEL", "2.5")
    assert webui.parse_args([]).model == "2.5"
    monkeypatch.setenv("INDEX_TTS_MODEL", "3")
    with pytest.raises(SystemExit):
        webui.parse_args([])
    assert "INDEX_TTS_MODEL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        webui.parse_args(["--model", "1.5"])


@pytest.mark.parametrize("argv,flag", [
    (["--max-queue", "-1"], "--max-queue"),
    (["--max-text-chars", "0"], "--max-text-chars"),
    (["--request-timeout", "nan"], "--request-timeout"),
    (["--request-timeout", "0"], "--request-timeout"),
    (["--max-upload-mb", "inf"], "--max-upload-mb"),
    (["--max-voice-seconds", "-5"], "--max-voice-seconds"),
    (["--upload-formats", " , "], "--upload-formats"),
    (["--cors-origin", "*"], "--cors-origin"),
])
def test_bad_limit_flags_are_refused_by_name(argv, flag, capsys):
    with pytest.raises(SystemExit) as exited:
        webui.parse_args(argv)
    assert exited.value.code == 2
    assert flag in capsys.readouterr().err
