# A handler a small service might have: the words of a text, the most common, their mean length.
#   wasp invoke examples/python/words.py '{"text": "a rose is a rose"}'
import collections
import re
import statistics

WORDS = re.compile(r"[a-z']+")


def handler(event):
    words = WORDS.findall(event["text"].lower())
    if not words:
        raise ValueError("no words in the text")
    return {
        "words": len(words),
        "top": collections.Counter(words).most_common(3),
        "mean_length": round(statistics.mean(len(w) for w in words), 2),
    }
