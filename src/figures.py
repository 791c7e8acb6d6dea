"""Writing matplotlib figures: Agg canvases (no pyplot state), atomic files."""
import io
import os

import utility

FORMATS = ('png', 'pdf', 'svg')


def new_figure(**kwargs):
    """A matplotlib Figure on an Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def check_path(path, flag='--out'):
    """The format of ``path`` from its extension; a UserError names the accepted ones."""
    ext = os.path.splitext(str(path))[1].lower().lstrip('.')
    if ext not in FORMATS:
        raise utility.UserError(f'{flag} {path}: figures are written as '
                                f'{", ".join("." + f for f in FORMATS)}; give one of those '
                                f'extensions')
    return ext


def save(fig, path, flag='--out', dpi=100):
    """Write ``fig`` to ``path`` (format from the extension) through a temporary file."""
    ext = check_path(path, flag)
    buf = io.BytesIO()
    fig.savefig(buf, format=ext, dpi=dpi, metadata={'CreationDate': None} if ext == 'pdf' else None)
    utility.atomic_write_bytes(path, buf.getvalue())
