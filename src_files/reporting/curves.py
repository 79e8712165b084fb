"""metrics.csv and the PNG of the loss and mAP curves of a training run."""
import csv
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from src_files.files import atomic_replace, atomic_write_text


def write_metrics_csv(path, history):
    """All epochs so far, one row each (rewritten whole each epoch, so it always matches latest.pth)."""
    if not history:
        return
    fields = list(history[0].keys())
    for row in history[1:]:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator='\n')
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(row.get(k, '')) for k in fields})
    atomic_write_text(buf.getvalue(), path)


def _fmt(value):
    if isinstance(value, float):
        return f'{value:.6g}'
    return value


def plot_history(path, history, title='', metric='mAP', extra=()):
    """Two panels: mean training loss per epoch, and `metric` (mAP, top1) of the model and its EMA per epoch, with
    the `extra` metrics (e.g. top5) of both dashed."""
    if not history:
        return
    epochs = [row['epoch'] for row in history]
    fig = Figure(figsize=(10, 4))  # (no pyplot: the caller's matplotlib backend is left as it is)
    FigureCanvasAgg(fig)
    ax_loss, ax_map = fig.subplots(1, 2)
    ax_loss.plot(epochs, [row['loss'] for row in history], marker='o')
    ax_loss.set_xlabel('epoch')
    ax_loss.set_ylabel('training loss (mean per batch)')
    ax_loss.grid(alpha=0.3)
    names = (metric,) + tuple(extra)  # (the legend names the metric when there are several)
    curves = [(key, who + (f' {name}' if extra else ''), '-' if name == metric else '--')
              for name in names for key, who in ((name, 'model'), (f'{name}_ema', 'EMA'))]
    for key, label, style in curves:
        if key in history[0]:
            ax_map.plot(epochs, [row[key] for row in history], marker='o', linestyle=style, label=label)
    ax_map.set_xlabel('epoch')
    ax_map.set_ylabel(f"validation {' / '.join(names)} (%)")
    ax_map.grid(alpha=0.3)
    ax_map.legend()
    for ax in (ax_loss, ax_map):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_replace(lambda tmp: fig.savefig(tmp, dpi=100), path, suffix='.tmp.png')
