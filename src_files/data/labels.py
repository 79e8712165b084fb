"""Parsing of label cells written as python-style lists or as separated names."""
import ast
import re

_QUOTES = '\'"'


def parse_label_list(text, separators=','):
    """Return the label names in `text`.

    Accepts `['a', 'b']`, `[a, b]` (the published NUS-WIDE format) and `a;b` style cells, where the
    separators are the characters in `separators`; blanks around names and quotes are stripped.
    """
    text = (text or '').strip()
    if text.startswith('[') and text.endswith(']'):
        try:  # a real python list keeps names that contain commas intact
            value = ast.literal_eval(text)
            if isinstance(value, list) and all(isinstance(name, str) for name in value):
                return [name.strip() for name in value if name.strip()]
        except (ValueError, SyntaxError):
            pass
        text, separators = text[1:-1], ','
    names = (name.strip().strip(_QUOTES).strip() for name in re.split(f"[{re.escape(separators)}]", text))
    return [name for name in names if name]
