"""Parsing of label cells written as python-style lists or as separated names."""
import ast
import io
import re
import tokenize

_QUOTES = '\'"'
_LIST_TOKENS = {tokenize.OP, tokenize.STRING, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                tokenize.ENDMARKER}


def _quoted_names(text):
    """The string literals of a bracketed list of them, or None if `text` holds anything else.

    Unlike ast.literal_eval this keeps `['a' 'b']` (how numpy prints an array of names, and so how pandas
    saves a column of them) as two names rather than joining the adjacent literals into 'ab'.
    """
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    if any(t.type not in _LIST_TOKENS or (t.type == tokenize.OP and t.string not in '[],') for t in tokens):
        return None
    strings = [t.string for t in tokens if t.type == tokenize.STRING]
    try:
        names = [ast.literal_eval(s) for s in strings]
    except (ValueError, SyntaxError):
        return None
    return names if strings and all(isinstance(name, str) for name in names) else None


def is_list_cell(text):
    """Whether a label cell is written as a bracketed list."""
    text = (text or '').strip()
    return text.startswith('[') and text.endswith(']')


def parse_label_list(text, separators=','):
    """Return the label names in `text`.

    Accepts `['a', 'b']` (also numpy's `['a' 'b']`), `[a, b]` (the published NUS-WIDE format) and `a;b` style
    cells, where the separators are the characters in `separators`; blanks around names and quotes are stripped.
    """
    text = (text or '').strip()
    if is_list_cell(text):
        names = _quoted_names(text)  # quoted names keep the commas they contain
        if names is not None:
            return [name.strip() for name in names if name.strip()]
        text, separators = text[1:-1], ','
    names = (name.strip().strip(_QUOTES).strip() for name in re.split(f"[{re.escape(separators)}]", text))
    return [name for name in names if name]
