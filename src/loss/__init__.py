"""Loss package (placeholder parser; the loss-package work replaces this file)."""
import re

import utility


def parse_loss_string(text):
    terms = []
    for part in text.split('+'):
        m = re.fullmatch(r'\s*([0-9.eE+-]+)\s*\*\s*(\w+)\s*', part)
        if not m:
            raise utility.UserError(f'bad --loss term {part!r}')
        terms.append((float(m.group(1)), m.group(2)))
    return terms
