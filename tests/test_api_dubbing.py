"""POST /v1/dubbing and `duration` on /v1/audio/speech, on a real server (quick voice)."""

from __future__ import annotations

import io
import json
import zipfile

import soundfile as sf

SRT = """1
00:00:00,500 --> 00:00:02,500
Alice: The weather is bright today.

2
00:00:03,000 --> 00:00:04,000
Bob: [sad]We will walk along the river after lunch.
"""


def test_dubbing_returns_a_zip_with_the_track_the_cues_and_the_report(studio_server):
    with studio_server.client() as http:
        answer = http.post("/v1/dubbing", data={"voice": "alice", "fit": "fit", "response_format": "wav", "seed": "5"},
                           files={"subtitles": ("talk.srt", SRT.encode(), "application/x-subrip")}, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert {"track.wav", "cues/001.wav", "cues/002.wav", "report.json", "source.srt"} <= set(archive.namelist())
    report = json.loads(archive.read("report.json"))["cues"]
    assert [r["index"] for r in report] == [1, 2]
    assert all(r["actual"] <= r["target"] + 1e-4 and r["overrun"] == 0 for r in report)
    assert report[0]["actual_end"] <= report[1]["start"]
    track, rate = sf.read(io.BytesIO(archive.read("track.wav")), dtype="int16")
    cue, _ = sf.read(io.BytesIO(archive.read("cues/001.wav")), dtype="int16")
    start = round(0.5 * rate)
    assert (track[start: start + len(cue)] == cue).all()
    # with one voice the "Alice:" prefix is text: the roles map makes it a role
    assert report[0]["text"].startswith("Alice:")


def test_dubbing_with_roles_and_bad_files_name_the_cue(studio_server):
    with studio_server.client() as http:
        answer = http.post("/v1/dubbing", data={"roles": json.dumps({"Alice": "alice", "Bob": "alice"}), "response_format": "mp3"},
                           files={"subtitles": ("talk.srt", SRT.encode())}, timeout=120)
        assert answer.status_code == 200, answer.text
        report = json.loads(zipfile.ZipFile(io.BytesIO(answer.content)).read("report.json"))["cues"]
        assert [(r["role"], r["text"]) for r in report] == [("Alice", "The weather is bright today."),
                                                            ("Bob", "[sad]We will walk along the river after lunch.")]
        overlapping = SRT.replace("00:00:03,000 --> 00:00:04,000", "00:00:02,000 --> 00:00:04,000")
        for data, files, param, words in (
                ({"voice": "alice"}, {"subtitles": ("a.srt", overlapping.encode())}, "subtitles", "cue 2"),
                ({"voice": "alice"}, {"subtitles": ("a.srt", b"1\n00:00:01,000 --> 00:00:02,000\n\xff\xfe\n")}, "subtitles", "cue 1"),
                ({"voice": "alice", "fit": "squash"}, {"subtitles": ("a.srt", SRT.encode())}, "fit", "natural"),
                ({"voice": "nobody"}, {"subtitles": ("a.srt", SRT.encode())}, "voice", "nobody"),
                ({"roles": "[1]"}, {"subtitles": ("a.srt", SRT.encode())}, "roles", "JSON object")):
            bad = http.post("/v1/dubbing", data=data, files=files)
            assert bad.status_code == 422, bad.text
            error = bad.json()["error"]
            assert error["param"] == param and words in error["message"], error


def test_speech_duration_hits_the_target_or_names_the_range(studio_server):
    with studio_server.client() as http:
        body = {"input": "The weather is bright and clear today.", "voice": "alice", "response_format": "wav"}
        for target in (1.6, 2.9):
            answer = http.post("/v1/audio/speech", json={**body, "duration": target}, timeout=60)
            assert answer.status_code == 200, answer.text
            audio, rate = sf.read(io.BytesIO(answer.content))
            assert abs(len(audio) / rate - target) <= 0.02
        far = http.post("/v1/audio/speech", json={**body, "duration": 30})
        assert far.status_code == 422 and far.json()["error"]["param"] == "duration"
        assert "can take" in far.json()["error"]["message"]
        both = http.post("/v1/audio/speech", json={**body, "duration": 2, "speed": 1.5})
        assert both.status_code == 422 and both.json()["error"]["param"] == "duration"
