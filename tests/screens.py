"""Where browser tests put their screenshots.

The README's screenshots in docs/ are refreshed only on request
(`INDEX_TTS_UPDATE_SCREENSHOTS=1 ./run_tests.sh`), so an ordinary test run never modifies tracked
files; otherwise they go to a temporary folder.
"""

import os
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def screenshot_path(name: str) -> Path:
    if os.environ.get("INDEX_TTS_UPDATE_SCREENSHOTS") == "1":
        return DOCS / name
    folder = Path(tempfile.gettempdir()) / "index_tts_screenshots"
    folder.mkdir(exist_ok=True)
    return folder / name
