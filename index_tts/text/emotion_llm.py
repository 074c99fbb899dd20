"""Text -> 8 emotion weights with upstream's fine-tuned Qwen3 (`qwen0.6bemo4-merge/`, spec §7.3).

The model answers a chat whose system prompt is "文本情感分类" (text emotion classification) with a
JSON object keyed by Chinese emotion names, e.g. {"高兴": 0.0, "愤怒": 0.8, ...}. Everything after
generation is the pure function `parse_emotion_output`, so the rules can be tested without the
model:

1. `json.loads`; if that fails, a regex picks `key": number` pairs out of the text.
2. Label-style answers count as 1.0 for that emotion: a bare `angry` / `"愤怒"`, or
   `{"emotion": "愤怒"}` (upstream HEAD `8887408`).
3. The model never outputs 低落 (melancholic) on its own, it says 悲伤 (sad); when the input text
   mentions melancholy, the two values are swapped (upstream's workaround).
4. Missing emotions are 0; values are clamped to [0, 1.2]; a non-numeric value is an error; if
   nothing is above 0 the result is calm = 1.0.
"""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

from index_tts.emotion import EMOTIONS

SYSTEM_PROMPT = "文本情感分类"
THINK_END_ID = 151668  # "</think>" in the Qwen3 vocabulary
MAX_NEW_TOKENS = 32768  # upstream's value; the answer is a short JSON object and ends with EOS

# The model's keys, in EMOTIONS order (happy, angry, sad, afraid, disgusted, melancholic, surprised, calm).
CHINESE_KEYS = ("高兴", "愤怒", "悲伤", "恐惧", "反感", "低落", "惊讶", "自然")
_KEY_BY_NAME = {**dict(zip(CHINESE_KEYS, CHINESE_KEYS)), **dict(zip(EMOTIONS, CHINESE_KEYS))}
_LABEL_FIELDS = ("emotion", "label")

MELANCHOLIC_WORDS = ("低落", "melancholy", "melancholic", "depression", "depressed", "gloomy")
MIN_SCORE, MAX_SCORE = 0.0, 1.2

# Upstream's fallback for malformed JSON: a key (no spaces, quotes, colons, dots or commas),
# an optional closing quote, a colon, then digits and dots.
_PAIR_RE = re.compile(r'([^\s":.,]+?)"?\s*:\s*([\d.]+)')


def parse_emotion_output(raw_text: str, input_text: str) -> tuple[float, ...]:
    """The model's decoded answer -> 8 weights in EMOTIONS order.

    input_text: the text that was classified (only used for the melancholic swap).
    Raises ValueError for a value that is not a number.
    """
    scores = _read_scores(raw_text)
    if any(word in input_text.lower() for word in MELANCHOLIC_WORDS):
        scores["悲伤"], scores["低落"] = scores.get("低落", 0.0), scores.get("悲伤", 0.0)
    values = tuple(_clamp(key, scores.get(key, 0.0)) for key in CHINESE_KEYS)
    if all(v <= 0.0 for v in values):
        values = values[:-1] + (1.0,)  # calm
    return values


def _read_scores(raw_text: str) -> dict:
    """Chinese key -> raw value (not yet checked or clamped)."""
    try:
        content = json.loads(raw_text)
    except json.JSONDecodeError:
        pairs = {m.group(1): _to_float(m.group(1), m.group(2)) for m in _PAIR_RE.finditer(raw_text)}
        if pairs:
            return _by_chinese_key(pairs)
        label = _label_key(raw_text.strip().strip("\"'").strip())
        return {label: 1.0} if label else {}
    if isinstance(content, str):
        label = _label_key(content.strip())
        return {label: 1.0} if label else {}
    if not isinstance(content, dict):
        raise ValueError(f"emotion model answered neither an object nor a label: {raw_text!r}")
    for field in _LABEL_FIELDS:
        if isinstance(content.get(field), str) and _label_key(content[field].strip()):
            return {_label_key(content[field].strip()): 1.0}
    return _by_chinese_key(content)


def _by_chinese_key(content: dict) -> dict:
    # Upstream reads Chinese keys only; English names are accepted as well. Other keys are ignored.
    out = {}
    for key, value in content.items():
        name = _KEY_BY_NAME.get(key.strip()) if isinstance(key, str) else None
        if name is not None:
            out[name] = value
    return out


def _label_key(label: str) -> str | None:
    return _KEY_BY_NAME.get(label) or _KEY_BY_NAME.get(label.lower())


def _to_float(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"emotion {key!r} has a non-numeric value {text!r}") from None


def _clamp(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"emotion {key!r} has a non-numeric value {value!r}")
    return float(max(MIN_SCORE, min(MAX_SCORE, value)))


def ids_after_think(output_ids: list[int]) -> list[int]:
    """The generated ids after the last `</think>`; all of them when there is none."""
    for i in range(len(output_ids) - 1, -1, -1):
        if output_ids[i] == THINK_END_ID:
            return output_ids[i + 1 :]
    return output_ids


class QwenEmotion:
    """Loads `qwen0.6bemo4-merge/` (a local HF directory; nothing is downloaded) on construction.

    inference(text) -> 8 weights in EMOTIONS order. Calls are serialised: one model, one generate
    at a time.
    """

    def __init__(self, model_dir: str | Path, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"Qwen emotion model not found in {model_dir} (expected config.json there)")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # Upstream runs it in fp16; CPU matmuls in fp16 are slow or unsupported, so CPU uses fp32.
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
        self.model.to(self.device).eval()
        self._lock = threading.Lock()

    def generate_raw(self, text: str) -> str:
        """The model's decoded answer for `text` (after any thinking block)."""
        import torch

        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]
        prompt = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        inputs = self.tokenizer([prompt], return_tensors="pt").to(self.device)
        with self._lock, torch.no_grad():
            generated = self.model.generate(
                **inputs, max_new_tokens=MAX_NEW_TOKENS, pad_token_id=self.tokenizer.eos_token_id
            )
        output_ids = generated[0][inputs["input_ids"].shape[1] :].tolist()
        return self.tokenizer.decode(ids_after_think(output_ids), skip_special_tokens=True)

    def inference(self, text: str) -> tuple[float, ...]:
        return parse_emotion_output(self.generate_raw(text), text)
