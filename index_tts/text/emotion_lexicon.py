"""Text emotion from a small Chinese + English keyword lexicon.

`text_to_emotion(text)` returns 8 weights in EMOTIONS order that sum to 1, or pure calm when no
keyword matches. It is a pure function (no state, no models), so the neural engine's text mode
can use it as a fallback when its emotion model is absent.

Negation: an English keyword preceded within three words by a negator ("not", "never",
"don't", "n't", ...), or a Chinese keyword directly preceded by 不/没/没有/别/未/并不/一点也不,
does not count for its emotion. A negated positive ("not happy", "不开心") counts toward sad;
a negated negative ("not afraid", "不难过") counts toward calm.
"""

from __future__ import annotations

import re

from index_tts.emotion import EMOTIONS

CALM_ONLY = tuple(1.0 if e == "calm" else 0.0 for e in EMOTIONS)

# English entries are word stems matched at a word start ("happ" matches happy, happiness).
# Stems of three letters or fewer ("sad", "mad", "cry") only take the common suffixes below, so
# "made" or "crystal" do not match.
ENGLISH: dict[str, tuple[str, ...]] = {
    "happy": ("happ", "glad", "joy", "delight", "cheer", "excit", "wonderful", "great", "love", "yay",
              "hooray", "awesome", "fantastic", "smil", "laugh", "pleased", "celebrat", "thrill"),
    "angry": ("angr", "anger", "furious", "fury", "rage", "mad", "annoy", "irritat", "outrag", "hate",
              "damn", "shut up", "how dare", "livid"),
    "sad": ("sad", "unhapp", "cry", "cried", "tears", "grief", "griev", "sorrow", "heartbr", "miserab",
            "depress", "upset", "lonely", "sorry", "mourn"),
    "afraid": ("afraid", "fear", "scare", "terrif", "frighten", "panic", "nervous", "anxi", "worr",
               "horror", "dread", "help me"),
    "disgusted": ("disgust", "gross", "yuck", "eww", "nasty", "revolting", "sicken", "repuls", "vile",
                  "filthy"),
    "melancholic": ("melanchol", "nostalg", "wistful", "longing", "gloomy", "somber", "sombre", "bleak",
                    "memories", "used to", "long ago"),
    "surprised": ("surpris", "wow", "whoa", "unbelievab", "incredib", "amazing", "astonish", "shock",
                  "no way", "really?", "what?", "oh my"),
    "calm": ("calm", "peace", "relax", "quiet", "gentle", "serene", "tranquil", "steady", "slowly",
             "breathe"),
}

CHINESE: dict[str, tuple[str, ...]] = {
    "happy": ("开心", "高兴", "快乐", "幸福", "喜欢", "太好了", "哈哈", "欢乐", "愉快", "兴奋", "好棒", "爱你", "笑"),
    "angry": ("生气", "愤怒", "气死", "讨厌", "恼火", "混蛋", "可恶", "闭嘴", "滚", "火大", "凭什么"),
    "sad": ("难过", "伤心", "悲伤", "哭", "痛苦", "失望", "委屈", "心碎", "遗憾", "可怜", "对不起"),
    "afraid": ("害怕", "恐惧", "可怕", "吓", "担心", "紧张", "慌", "救命", "恐怖"),
    "disgusted": ("恶心", "厌恶", "讨厌死", "呕", "脏", "反感", "嫌弃"),
    "melancholic": ("忧郁", "惆怅", "怀念", "思念", "孤独", "寂寞", "落寞", "往事", "回忆"),
    "surprised": ("惊讶", "吃惊", "意外", "没想到", "天哪", "天啊", "竟然", "居然", "真的吗", "哇"),
    "calm": ("平静", "冷静", "安静", "放松", "淡定", "平和", "宁静", "慢慢"),
}

POSITIVE = {"happy", "calm", "surprised"}

_EN_NEGATORS = {"not", "no", "never", "don't", "dont", "didn't", "isn't", "wasn't", "aren't", "won't",
                "can't", "cannot", "hardly", "without", "nor"}
_ZH_NEGATORS = ("一点也不", "一点都不", "并不", "没有", "不", "没", "别", "未", "无")
_SHORT_STEM_END = r"(?:s|es|ly|ness|der|dest|ful|ous|ing|ed)?(?![a-z])"


def text_to_emotion(text: str) -> tuple[float, ...]:
    """Emotion weights (EMOTIONS order, sum 1) for `text`; calm when nothing matches."""
    scores = dict.fromkeys(EMOTIONS, 0.0)
    lowered = text.lower()
    _score_english(lowered, scores)
    _score_chinese(text, scores)
    total = sum(scores.values())
    if total <= 0:
        return CALM_ONLY
    return tuple(scores[e] / total for e in EMOTIONS)


def _credit(scores: dict[str, float], emotion: str, negated: bool) -> None:
    if not negated:
        scores[emotion] += 1.0
    elif emotion in POSITIVE:
        scores["sad"] += 0.5
    else:
        scores["calm"] += 0.5


def _score_english(lowered: str, scores: dict[str, float]) -> None:
    for emotion, stems in ENGLISH.items():
        for stem in stems:
            pattern = r"(?<![a-z])" + re.escape(stem) + (_SHORT_STEM_END if len(stem) <= 3 else "")
            for m in re.finditer(pattern, lowered):
                before = re.findall(r"[a-z']+", lowered[: m.start()])[-3:]
                negated = any(w in _EN_NEGATORS or w.endswith("n't") for w in before)
                _credit(scores, emotion, negated)


def _score_chinese(text: str, scores: dict[str, float]) -> None:
    for emotion, words in CHINESE.items():
        for word in words:
            start = text.find(word)
            while start != -1:
                before = text[max(0, start - 4): start]
                # skip a degree adverb between negator and word: 不太开心, 不是很开心
                stripped = re.sub(r"(太|很|是很|是|怎么|那么|再)$", "", before)
                negated = stripped.endswith(_ZH_NEGATORS)
                _credit(scores, emotion, negated)
                start = text.find(word, start + len(word))
